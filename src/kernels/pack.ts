/** Packing of param structs with C (and MSL) alignment rules. */

export type FieldType = 'uint' | 'int' | 'float' | 'ushort' | 'short' | 'uchar' | 'bool';

const SIZE: Record<FieldType, number> = { uint: 4, int: 4, float: 4, ushort: 2, short: 2, uchar: 1, bool: 1 };

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
  for (const [t, v, o] of placed) {
    switch (t) {
      case 'uint':
        dv.setUint32(o, v, true);
        break;
      case 'int':
        dv.setInt32(o, v, true);
        break;
      case 'float':
        dv.setFloat32(o, v, true);
        break;
      case 'ushort':
        dv.setUint16(o, v, true);
        break;
      case 'short':
        dv.setInt16(o, v, true);
        break;
      case 'uchar':
      case 'bool':
        dv.setUint8(o, v);
        break;
    }
  }
  return buf;
}
