//! WASI as plugins get it. A std guest imports `wasi:io` streams and polls even when it never
//! uses them, and wasmtime-wasi registers their blocking functions as async: any component
//! importing them would need an async store, where every call runs on a fiber of its own.
//! Here those functions are replaced by ones that never wait: they finish at once (stdio,
//! which is all a plugin gets) or trap with a message. So a plugin that imports nothing that
//! waits (http-client, files, kv on Redis) gets a plain synchronous call, the cheap case for a
//! policy that only reads and edits the request.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll::{Host as AsyncPoll, HostPollable as AsyncPollable};
use wasmtime_wasi::p2::bindings::io::streams::{
    self as async_streams, Host as AsyncStreams, HostInputStream as AsyncIn,
    HostOutputStream as AsyncOut,
};
use wasmtime_wasi::p2::bindings::sync::io::poll as sync_poll;
use wasmtime_wasi::p2::bindings::sync::io::streams::{self as sync_streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtxView, WasiView};

/// Imports whose calls may wait on I/O: a component importing any of them runs on an async
/// store (a fiber per call), so the wait yields the thread instead of blocking it.
const WAITING: [&str; 3] = [
    "wasmgate:plugin/http-client@",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Whether a component with these import names needs the async call path; `kv_waits` when the
/// store is networked (Redis), not in-process.
pub fn waits<'a>(mut imports: impl Iterator<Item = &'a str>, kv_waits: bool) -> bool {
    imports.any(|name| {
        WAITING.iter().any(|w| name.starts_with(w))
            || (kv_waits && name.starts_with("wasmgate:plugin/kv@"))
    })
}

/// All of WASI. With `direct`, the `wasi:io` streams and polls never wait (for components
/// that import nothing that waits, see [`waits`]); else they are wasmtime-wasi's async ones
/// (file reads stream through them).
pub fn add_to_linker<T: WasiView + 'static>(
    linker: &mut Linker<T>,
    direct: bool,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    if !direct {
        return Ok(());
    }
    linker.allow_shadowing(true);
    sync_poll::add_to_linker::<T, NoWaitIo>(linker, table)?;
    sync_streams::add_to_linker::<T, NoWaitIo>(linker, table)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn table<T: WasiView>(t: &mut T) -> NoWait<'_> {
    let WasiCtxView { table, .. } = t.ctx();
    NoWait(table)
}

struct NoWaitIo;

impl HasData for NoWaitIo {
    type Data<'a> = NoWait<'a>;
}

/// The WASI resource table, driving wasmtime-wasi's own stream code without ever waiting.
pub struct NoWait<'a>(&'a mut ResourceTable);

/// Runs `f` if it completes without waiting; otherwise the call traps: a plugin answers within
/// one call and waits only through the gateway's own capabilities.
fn at_once<F: Future>(f: F, what: &str) -> wasmtime::Result<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(wasmtime::format_err!(
            "{what} would wait; a plugin may not block on WASI I/O (use kv or http-client)"
        )),
    }
}

fn at_once_stream<T>(f: impl Future<Output = StreamResult<T>>, what: &str) -> StreamResult<T> {
    at_once(f, what).map_err(StreamError::Trap)?
}

impl sync_poll::Host for NoWait<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        at_once(AsyncPoll::poll(self.0, pollables), "wasi:io/poll.poll")?
    }
}

impl sync_poll::HostPollable for NoWait<'_> {
    fn ready(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<bool> {
        at_once(AsyncPollable::ready(self.0, p), "pollable.ready")?
    }

    fn block(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<()> {
        at_once(AsyncPollable::block(self.0, p), "pollable.block")?
    }

    fn drop(&mut self, p: Resource<DynPollable>) -> wasmtime::Result<()> {
        AsyncPollable::drop(self.0, p)
    }
}

impl sync_streams::Host for NoWait<'_> {
    fn convert_stream_error(
        &mut self,
        err: StreamError,
    ) -> wasmtime::Result<sync_streams::StreamError> {
        Ok(match AsyncStreams::convert_stream_error(self.0, err)? {
            async_streams::StreamError::LastOperationFailed(e) => {
                sync_streams::StreamError::LastOperationFailed(e)
            }
            async_streams::StreamError::Closed => sync_streams::StreamError::Closed,
        })
    }
}

impl sync_streams::HostOutputStream for NoWait<'_> {
    fn drop(&mut self, s: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        at_once(AsyncOut::drop(self.0, s), "output-stream.drop")?
    }

    fn check_write(&mut self, s: Resource<DynOutputStream>) -> StreamResult<u64> {
        AsyncOut::check_write(self.0, s)
    }

    fn write(&mut self, s: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        AsyncOut::write(self.0, s, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        s: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        at_once_stream(
            AsyncOut::blocking_write_and_flush(self.0, s, bytes),
            "output-stream.blocking-write-and-flush",
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        s: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        at_once_stream(
            AsyncOut::blocking_write_zeroes_and_flush(self.0, s, len),
            "output-stream.blocking-write-zeroes-and-flush",
        )
    }

    fn subscribe(
        &mut self,
        s: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOut::subscribe(self.0, s)
    }

    fn write_zeroes(&mut self, s: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        AsyncOut::write_zeroes(self.0, s, len)
    }

    fn flush(&mut self, s: Resource<DynOutputStream>) -> StreamResult<()> {
        AsyncOut::flush(self.0, s)
    }

    fn blocking_flush(&mut self, s: Resource<DynOutputStream>) -> StreamResult<()> {
        at_once_stream(
            AsyncOut::blocking_flush(self.0, s),
            "output-stream.blocking-flush",
        )
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        AsyncOut::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        at_once_stream(
            AsyncOut::blocking_splice(self.0, dst, src, len),
            "output-stream.blocking-splice",
        )
    }
}

impl sync_streams::HostInputStream for NoWait<'_> {
    fn drop(&mut self, s: Resource<DynInputStream>) -> wasmtime::Result<()> {
        at_once(AsyncIn::drop(self.0, s), "input-stream.drop")?
    }

    fn read(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        AsyncIn::read(self.0, s, len)
    }

    fn blocking_read(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        at_once_stream(
            AsyncIn::blocking_read(self.0, s, len),
            "input-stream.blocking-read",
        )
    }

    fn skip(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        AsyncIn::skip(self.0, s, len)
    }

    fn blocking_skip(&mut self, s: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        at_once_stream(
            AsyncIn::blocking_skip(self.0, s, len),
            "input-stream.blocking-skip",
        )
    }

    fn subscribe(
        &mut self,
        s: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncIn::subscribe(self.0, s)
    }
}
