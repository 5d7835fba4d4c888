/**
 * The system calls an agent under `hoop run` may not make, as a classic BPF program for
 * bubblewrap's `--seccomp FD`: the kernel keyrings (`keyctl`, `add_key`, `request_key`), where a
 * desktop's keychain keeps the person's hoop login, and pushing input into the terminal
 * (`ioctl` `TIOCSTI`, `TIOCLINUX`), with which a command could type into its person's shell after
 * it ends. Each answers `EPERM`; everything else is allowed. The program covers the host's
 * architecture and its 32-bit compatibility one; x32 calls on x86-64 are refused whole.
 *
 * @see https://www.kernel.org/doc/html/latest/userspace-api/seccomp_filter.html
 * @see https://man7.org/linux/man-pages/man2/keyctl.2.html
 * @see https://man7.org/linux/man-pages/man2/TIOCSTI.2const.html
 */

/** `AUDIT_ARCH_*` and the numbers of the calls refused, per architecture. */
interface ArchCalls {
  arch: number;
  keyctl: number;
  addKey: number;
  requestKey: number;
  ioctl: number;
  /** x86-64: calls with this bit are the x32 ABI's. */
  x32?: number;
}

/** @see https://github.com/torvalds/linux/blob/master/include/uapi/linux/audit.h */
const X86_64: ArchCalls = { arch: 0xc000003e, keyctl: 250, addKey: 248, requestKey: 249, ioctl: 16, x32: 0x40000000 };
const I386: ArchCalls = { arch: 0x40000003, keyctl: 288, addKey: 286, requestKey: 287, ioctl: 54 };
const AARCH64: ArchCalls = { arch: 0xc00000b7, keyctl: 219, addKey: 217, requestKey: 218, ioctl: 29 };
const ARM: ArchCalls = { arch: 0x40000028, keyctl: 311, addKey: 309, requestKey: 310, ioctl: 54 };

/** The architectures a process of this host may call in, by Node's `process.arch`. */
const HOST: Partial<Record<string, ArchCalls[]>> = { x64: [X86_64, I386], arm64: [AARCH64, ARM] };

const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
const EPERM = 1;
const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;

/** BPF opcodes. @see https://github.com/torvalds/linux/blob/master/include/uapi/linux/bpf_common.h */
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const RET_K = 0x06;

/** Offsets into `struct seccomp_data`: the call's number, its architecture, the low half of its second argument. */
const NR = 0;
const ARCH = 4;
const ARG1_LOW = 24;

type Insn = { code: number; k: number; jt?: string; jf?: string; label?: string };

/** Resolves labels into the relative jumps of `struct sock_filter` and encodes it (host byte order: little-endian on both). */
function assemble(program: Insn[]): Buffer {
  const at = new Map<string, number>();
  program.forEach((insn, i) => {
    if (insn.label) at.set(insn.label, i);
  });
  const out = Buffer.alloc(program.length * 8);
  program.forEach((insn, i) => {
    const jump = (label: string | undefined): number => {
      if (label === undefined) return 0;
      const offset = at.get(label)! - i - 1;
      if (offset < 0 || offset > 255) throw new Error(`seccomp: jump to ${label} out of range`);
      return offset;
    };
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(jump(insn.jt), i * 8 + 2);
    out.writeUInt8(jump(insn.jf), i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}

/**
 * The filter for this host (`process.arch`), or undefined where hoop knows no system call numbers
 * (the keyrings and the terminal are then not covered, and `hoop run` says so).
 */
export function agentSeccompFilter(hostArch: string = process.arch): Buffer | undefined {
  const arches = HOST[hostArch];
  if (!arches) return undefined;
  const program: Insn[] = [{ code: LD_W_ABS, k: ARCH }];
  arches.forEach((a, i) => program.push({ code: JEQ_K, k: a.arch, jt: `arch${i}` }));
  program.push({ code: RET_K, k: RET_ALLOW });
  arches.forEach((a, i) => {
    program.push({ code: LD_W_ABS, k: NR, label: `arch${i}` });
    if (a.x32 !== undefined) program.push({ code: JGE_K, k: a.x32, jt: 'deny' });
    for (const nr of [a.keyctl, a.addKey, a.requestKey]) program.push({ code: JEQ_K, k: nr, jt: 'deny' });
    program.push({ code: JEQ_K, k: a.ioctl, jt: 'ioctl' });
    program.push({ code: RET_K, k: RET_ALLOW });
  });
  program.push({ code: LD_W_ABS, k: ARG1_LOW, label: 'ioctl' });
  program.push({ code: JEQ_K, k: TIOCSTI, jt: 'deny' });
  program.push({ code: JEQ_K, k: TIOCLINUX, jt: 'deny' });
  program.push({ code: RET_K, k: RET_ALLOW });
  program.push({ code: RET_K, k: RET_ERRNO | EPERM, label: 'deny' });
  return assemble(program);
}
