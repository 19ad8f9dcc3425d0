/** Packing of param structs with C (and MSL) alignment rules. */

export type FieldType = 'uint' | 'int' | 'float' | 'ushort' | 'short' | 'uchar' | 'bool';

const SIZE: Record<FieldType, number> = { uint: 4, int: 4, float: 4, ushort: 2, short: 2, uchar: 1, bool: 1 };

/** Little-endian store of one field. */
const STORE: Record<FieldType, (dv: DataView, at: number, v: number) => void> = {
  uint: (dv, at, v) => dv.setUint32(at, v, true),
  int: (dv, at, v) => dv.setInt32(at, v, true),
  float: (dv, at, v) => dv.setFloat32(at, v, true),
  ushort: (dv, at, v) => dv.setUint16(at, v, true),
  short: (dv, at, v) => dv.setInt16(at, v, true),
  uchar: (dv, at, v) => dv.setUint8(at, v),
  bool: (dv, at, v) => dv.setUint8(at, v),
};

/** Pack fields in order: each aligned to its size, the struct padded to its largest alignment. */
export function packStruct(fields: [FieldType, number][]): Uint8Array {
  let off = 0;
  let align = 1;
  const placed: [FieldType, number, number][] = [];
  for (const [t, v] of fields) {
    const s = SIZE[t];
    off = Math.ceil(off / s) * s;
    placed.push([t, v, off]);
    off += s;
    align = Math.max(align, s);
  }
  const total = Math.max(align, Math.ceil(off / align) * align);
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  for (const [t, v, o] of placed) STORE[t](dv, o, v);
  return buf;
}
