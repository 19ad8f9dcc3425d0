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

/** Where one field of a packed struct sits. */
export interface FieldSlot {
  type: FieldType;
  offset: number;
  size: number;
}

/** The C layout of fields in order: each aligned to its size, the struct padded to its largest alignment. */
export function structLayout(types: FieldType[]): { fields: FieldSlot[]; size: number } {
  let off = 0;
  let align = 1;
  const fields: FieldSlot[] = [];
  for (const t of types) {
    const s = SIZE[t];
    if (s === undefined) throw new Error(`unknown struct field type '${String(t)}' (choose from ${Object.keys(SIZE).join(', ')})`);
    off = Math.ceil(off / s) * s;
    fields.push({ type: t, offset: off, size: s });
    off += s;
    align = Math.max(align, s);
  }
  return { fields, size: Math.max(align, Math.ceil(off / align) * align) };
}

/** Pack fields in order with C alignment rules (structLayout), little-endian. */
export function packStruct(fields: [FieldType, number][]): Uint8Array {
  const layout = structLayout(fields.map(([t]) => t));
  const buf = new Uint8Array(layout.size);
  const dv = new DataView(buf.buffer);
  fields.forEach(([t, v], i) => STORE[t](dv, (layout.fields[i] as FieldSlot).offset, v));
  return buf;
}

/** The field types packStruct knows. */
export const FIELD_TYPES = Object.keys(SIZE) as FieldType[];
