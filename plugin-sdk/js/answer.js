// What a phase answers the client with, instead of going on.

const encoder = new TextEncoder();

/** Bodies may be given as text (sent as UTF-8) or bytes; anything else is a mistake. */
export function toBytes(body) {
  if (body === undefined || body === null) return new Uint8Array();
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError(`a body is a string or bytes, not ${typeof body}`);
}

export class Answer {
  constructor(status, body = "", headers = []) {
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(`${status} is not an HTTP status`);
    }
    this.status = status;
    this.body = toBytes(body);
    this.headers = headers.map(([k, v]) => [String(k), String(v)]);
  }

  /** An RFC 9457 problem+json answer, as the gateway's own errors are. */
  static problem(status, detail, headers = []) {
    const body = JSON.stringify({ status, detail });
    return new Answer(status, body, [["content-type", "application/problem+json"], ...headers]);
  }

  static json(status, value, headers = []) {
    return new Answer(status, JSON.stringify(value), [["content-type", "application/json"], ...headers]);
  }
}
