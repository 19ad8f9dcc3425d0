/**
 * Peak memory bandwidth (and FP32 throughput where published) of known
 * devices, for "% of peak" in `moe bench`. Figures are the vendors' published
 * numbers; each entry names its source. Order matters: the first pattern that
 * matches the device name wins, so specific names come before general ones.
 */

export interface DevicePeak {
  /** Matched case-insensitively against the device name. */
  pattern: RegExp;
  name: string;
  /** GB/s (10^9 bytes per second). */
  bandwidthGBs: number;
  /** FP32 TFLOP/s, where published. */
  fp32Tflops?: number;
  source: string;
}

const APPLE = 'Apple tech specs / newsroom announcement of the chip (unified memory bandwidth)';

/** One Apple chip generation, its tiers most specific first (Ultra, Max, Pro, then '' for the base chip). */
function apple(chip: string, tiers: [tier: string, bandwidthGBs: number, note?: string][]): DevicePeak[] {
  return tiers.map(([tier, bandwidthGBs, note]) => ({
    pattern: tier ? new RegExp(`${chip} ${tier}`, 'i') : new RegExp(`Apple ${chip}\\b`, 'i'),
    name: `Apple ${chip}${tier ? ` ${tier}` : ''}${note ? ` (${note})` : ''}`,
    bandwidthGBs,
    source: APPLE,
  }));
}

export const PEAKS: DevicePeak[] = [
  ...apple('M1', [['Ultra', 800], ['Max', 400], ['Pro', 200], ['', 68.25]]),
  ...apple('M2', [['Ultra', 800], ['Max', 400], ['Pro', 200], ['', 100]]),
  ...apple('M3', [['Ultra', 819], ['Max', 400, '16-core CPU; the 14-core bin has 300'], ['Pro', 150], ['', 100]]),
  ...apple('M4', [['Max', 546, '16-core CPU; the 14-core bin has 410'], ['Pro', 273], ['', 120]]),
  { pattern: /H200/i, name: 'NVIDIA H200', bandwidthGBs: 4800, fp32Tflops: 67, source: 'NVIDIA H200 Tensor Core GPU datasheet (HBM3e, 4.8 TB/s)' },
  { pattern: /H100.*PCIe/i, name: 'NVIDIA H100 PCIe', bandwidthGBs: 2000, fp32Tflops: 51, source: 'NVIDIA H100 Tensor Core GPU datasheet (PCIe: 2 TB/s)' },
  { pattern: /H100.*NVL/i, name: 'NVIDIA H100 NVL', bandwidthGBs: 3900, fp32Tflops: 60, source: 'NVIDIA H100 Tensor Core GPU datasheet (NVL: 3.9 TB/s)' },
  { pattern: /H100/i, name: 'NVIDIA H100 SXM5', bandwidthGBs: 3350, fp32Tflops: 67, source: 'NVIDIA H100 Tensor Core GPU datasheet (SXM: 3.35 TB/s)' },
  { pattern: /A100.*80GB/i, name: 'NVIDIA A100 80GB', bandwidthGBs: 2039, fp32Tflops: 19.5, source: 'NVIDIA A100 datasheet (80GB SXM: 2,039 GB/s)' },
  { pattern: /A100/i, name: 'NVIDIA A100 40GB', bandwidthGBs: 1555, fp32Tflops: 19.5, source: 'NVIDIA A100 datasheet (40GB: 1,555 GB/s)' },
  { pattern: /L40S/i, name: 'NVIDIA L40S', bandwidthGBs: 864, fp32Tflops: 91.6, source: 'NVIDIA L40S datasheet' },
  { pattern: /\bL4\b/i, name: 'NVIDIA L4', bandwidthGBs: 300, fp32Tflops: 30.3, source: 'NVIDIA L4 datasheet' },
  { pattern: /A10\b/i, name: 'NVIDIA A10', bandwidthGBs: 600, fp32Tflops: 31.2, source: 'NVIDIA A10 datasheet' },
  { pattern: /RTX 4090/i, name: 'NVIDIA GeForce RTX 4090', bandwidthGBs: 1008, fp32Tflops: 82.6, source: 'NVIDIA Ada GPU architecture whitepaper' },
  { pattern: /RTX 3090/i, name: 'NVIDIA GeForce RTX 3090', bandwidthGBs: 936, fp32Tflops: 35.6, source: 'NVIDIA Ampere GA102 whitepaper' },
];

export function findPeak(deviceName: string): DevicePeak | null {
  return PEAKS.find((p) => p.pattern.test(deviceName)) ?? null;
}
