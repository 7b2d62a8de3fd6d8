/**
 * A minimal protobuf wire-format writer and reader: just enough to write ONNX models and read
 * a few fields back, with no protobuf library and no generated code.
 *
 * Wire types follow https://protobuf.dev/programming-guides/encoding/: 0 varint, 1 fixed64,
 * 2 length-delimited, 5 fixed32.
 */

/** Protobuf wire types. */
export const WireType = { varint: 0, fixed64: 1, lengthDelimited: 2, fixed32: 5 } as const;

const utf8 = new TextEncoder();

/**
 * Appends protobuf fields to a growing buffer. Nested messages are written by encoding the child
 * with its own writer and passing the bytes to {@link ProtoWriter.message}.
 */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** Writes a raw varint (no tag). Negative numbers are written as 64-bit two's complement. */
  rawVarint(value: number | bigint): this {
    if (typeof value === "number" && value >= 0 && value <= 0x7fffffff && Number.isInteger(value)) {
      this.reserve(5);
      let v = value;
      while (v > 0x7f) {
        this.buf[this.len++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.buf[this.len++] = v;
      return this;
    }
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new RangeError(`varint value ${value} is not a safe integer`);
    }
    let v = BigInt.asUintN(64, BigInt(value));
    this.reserve(10);
    while (v > 0x7fn) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
    return this;
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint(field * 8 + wireType);
  }

  /** Writes a varint field (int32, int64, uint64, enum, bool). */
  varint(field: number, value: number | bigint): this {
    this.tag(field, WireType.varint);
    return this.rawVarint(value);
  }

  /** Writes a `float` field (fixed32, little-endian IEEE 754). */
  float(field: number, value: number): this {
    this.tag(field, WireType.fixed32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.len, value, true);
    this.len += 4;
    return this;
  }

  /** Writes a length-delimited `bytes` field. */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.lengthDelimited);
    this.rawVarint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    return this;
  }

  /** Writes a UTF-8 `string` field. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** Writes an embedded message given its encoded bytes. */
  message(field: number, encoded: Uint8Array): this {
    return this.bytes(field, encoded);
  }

  /** Writes a packed repeated varint field (one length-delimited record). */
  packedVarints(field: number, values: ArrayLike<number | bigint>): this {
    const inner = new ProtoWriter();
    for (let k = 0; k < values.length; k++) inner.rawVarint(values[k] as number | bigint);
    return this.bytes(field, inner.finish());
  }

  /** Writes a packed repeated `float` field. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    const raw = new Uint8Array(values.length * 4);
    const view = new DataView(raw.buffer);
    for (let k = 0; k < values.length; k++) view.setFloat32(k * 4, values[k] as number, true);
    return this.bytes(field, raw);
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** One decoded field: its number, wire type and value (a varint as bigint, others as bytes). */
export interface ProtoField {
  /** Field number. */
  field: number;
  /** Wire type, see {@link WireType}. */
  wireType: number;
  /** The varint value (wire type 0). */
  varint?: bigint;
  /** The payload of a length-delimited (2) or fixed (1, 5) field; a view into the input. */
  bytes?: Uint8Array;
}

/**
 * Iterates over the top-level fields of an encoded message.
 *
 * @throws RangeError on truncated input, groups (wire types 3 and 4) or unknown wire types.
 */
export function* readProtoFields(data: Uint8Array): Generator<ProtoField> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= data.length) throw new RangeError("truncated varint");
      const b = data[pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new RangeError("varint longer than 10 bytes");
    }
  };
  const take = (len: number): Uint8Array => {
    if (pos + len > data.length) throw new RangeError("truncated field");
    const out = data.subarray(pos, pos + len);
    pos += len;
    return out;
  };
  while (pos < data.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    switch (wireType) {
      case WireType.varint:
        yield { field, wireType, varint: varint() };
        break;
      case WireType.fixed64:
        yield { field, wireType, bytes: take(8) };
        break;
      case WireType.lengthDelimited:
        yield { field, wireType, bytes: take(Number(varint())) };
        break;
      case WireType.fixed32:
        yield { field, wireType, bytes: take(4) };
        break;
      default:
        throw new RangeError(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
}
