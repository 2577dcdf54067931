//! `#[plugin]`: marks a plugin's `impl Plugin for T` block. It records which phases the block
//! writes (so the gateway never calls the others, nor buffers bodies nobody reads), supplies
//! `type Config = Self` and the `new` that returns it when the block has none, and exports `T`
//! as the component's `guest` interface.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemImpl, parse_macro_input};

const PHASES: [(&str, &str); 5] = [
    ("on_request_headers", "REQUEST_HEADERS"),
    ("on_request_body", "REQUEST_BODY"),
    ("on_response_headers", "RESPONSE_HEADERS"),
    ("on_response_body", "RESPONSE_BODY"),
    ("on_log", "LOG"),
];

/// Put on `impl Plugin for YourType { ... }`.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[plugin] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    let is_plugin_impl = block
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .is_some_and(|s| s.ident == "Plugin");
    if !is_plugin_impl {
        return syn::Error::new_spanned(&block.self_ty, "#[plugin] goes on `impl Plugin for T`")
            .to_compile_error()
            .into();
    }
    let mut flags = Vec::new();
    for item in &block.items {
        if let ImplItem::Fn(f) = item
            && let Some((_, flag)) = PHASES.iter().find(|(name, _)| f.sig.ident == name)
        {
            let flag = syn::Ident::new(flag, proc_macro2::Span::call_site());
            flags.push(quote!(::wasmgate_plugin_sdk::Phases::#flag.bits()));
        }
    }
    let phases = if flags.is_empty() {
        quote!(::wasmgate_plugin_sdk::Phases::empty())
    } else {
        quote!(::wasmgate_plugin_sdk::Phases::from_bits_retain(#(#flags)|*))
    };
    block.items.push(syn::parse_quote! {
        const __PHASES: ::wasmgate_plugin_sdk::Phases = #phases;
    });
    // The common case, a config that is the plugin itself, needs neither item written out.
    let has_config = block
        .items
        .iter()
        .any(|i| matches!(i, ImplItem::Type(t) if t.ident == "Config"));
    let has_new = block
        .items
        .iter()
        .any(|i| matches!(i, ImplItem::Fn(f) if f.sig.ident == "new"));
    if !has_config {
        block.items.push(syn::parse_quote! { type Config = Self; });
    }
    if !has_new {
        block.items.push(syn::parse_quote! {
            fn new(config: Self) -> ::std::result::Result<Self, ::std::string::String> {
                ::std::result::Result::Ok(config)
            }
        });
    }
    let ty = &block.self_ty;
    quote! {
        #block
        ::wasmgate_plugin_sdk::export_plugin!(#ty);
    }
    .into()
}
