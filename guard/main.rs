//! sysroot-mk's qemu guard: the binfmt_misc interpreter `enter` registers for foreign
//! binaries instead of qemu itself.
//!
//! The kernel runs it as `guard PATH ARGV0 ARGS...` (flag P) with the binary open as
//! `AT_EXECFD` (flag O) and, for a setuid binary, with the binary's credentials (flag C).
//! qemu trusts its environment (`QEMU_LD_PREFIX`, `QEMU_LOG_FILENAME`, ...), so on a
//! secure execution (`AT_SECURE`) the guard removes every variable qemu or its glib
//! reads before it execs qemu; otherwise it passes them on for the user's own debugging.
//! qemu gets the binary as `/proc/self/fd/N` of the kernel's descriptor, never by the
//! path the caller named (which could be swapped after the kernel took credentials from
//! it), and `-0 ARGV0` because qemu reads the preserve-argv0 flag of its own exec only.
//!
//! Where qemu is and which arguments it gets is written by sysroot-mk into `CONFIG`
//! before the image is registered. Freestanding (no libc): it runs inside the sysroot's
//! root, where no host library exists, and stays a few kilobytes.
//! Built by build.rs for x86_64 and aarch64 hosts only.

#![no_std]
#![no_main]
#![no_builtins]

use core::arch::{asm, global_asm};

/// Marker, then NUL-terminated entries until an empty one: `q<path>` is a qemu to try in
/// order, `a<arg>` an argument to put before the binary. Patched by sysroot-mk.
#[used]
#[no_mangle]
static SYSROOT_MK_GUARD_CONFIG: [u8; 1024] = {
    let mut c = [0u8; 1024];
    let marker = b"SYSROOT-MK-GUARD-CONFIG-1\0";
    let mut i = 0;
    while i < marker.len() {
        c[i] = marker[i];
        i += 1;
    }
    c
};
const MARKER_LEN: usize = 26;

const AT_NULL: usize = 0;
const AT_EXECFD: usize = 2;
const AT_FLAGS: usize = 8;
const AT_SECURE: usize = 23;
const AT_FLAGS_PRESERVE_ARGV0: usize = 1;
const ENOENT: isize = 2;
const EACCES: isize = 13;
const AT_FDCWD: isize = -100;
const O_RDONLY_CLOEXEC: usize = 0o2000000;

/// Variable prefixes qemu (all its options have a `QEMU_*` twin) and its glib read.
const SCRUBBED: [&[u8]; 2] = [b"QEMU_", b"G_"];

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call guard_main",
    "ud2",
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "bl guard_main",
    "brk #0",
);

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const OPENAT: usize = 257;
    pub const MMAP: usize = 9;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const OPENAT: usize = 56;
    pub const MMAP: usize = 222;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
}

#[cfg(target_arch = "x86_64")]
unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a[0], in("rsi") a[1],
         in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
         lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    asm!("svc 0", in("x8") n, inlateout("x0") a[0] as isize => ret, in("x1") a[1],
         in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5], options(nostack));
    ret
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group takes no pointers.
        unsafe { syscall6(nr::EXIT_GROUP, [code, 0, 0, 0, 0, 0]) };
    }
}

fn say(parts: &[&[u8]]) {
    for p in parts {
        // SAFETY: the slice is valid for its length.
        unsafe { syscall6(nr::WRITE, [2, p.as_ptr() as usize, p.len(), 0, 0, 0]) };
    }
}

fn fail(why: &[u8], code: usize) -> ! {
    say(&[b"sysroot-mk qemu guard: ", why, b"\n"]);
    exit(code)
}

/// Referenced by the precompiled `core`'s unwind tables; with `panic=abort` nothing
/// unwinds, so it is never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    fail(b"internal error", 126)
}

/// The bytes of a NUL-terminated string, without the NUL.
unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    core::slice::from_raw_parts(p, n)
}

fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
    // Byte by byte: slice equality would call memcmp, which nothing here provides.
    s.len() >= prefix.len() && prefix.iter().zip(s).all(|(a, b)| a == b)
}

/// `/proc/self/fd/<fd>\0` into `buf`.
fn fd_path(fd: usize, buf: &mut [u8; 40]) {
    let head = b"/proc/self/fd/";
    buf[..head.len()].copy_from_slice(head);
    let mut digits = [0u8; 20];
    let (mut n, mut len) = (fd, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[head.len() + i] = digits[len - 1 - i];
    }
    buf[head.len() + len] = 0;
}

/// The entries of the patched configuration, as pointers to NUL-terminated strings.
fn config() -> &'static [u8] {
    // Read through an opaque pointer: the compiler must not fold the unpatched zeros.
    let all: &'static [u8; 1024] = core::hint::black_box(&SYSROOT_MK_GUARD_CONFIG);
    &all[MARKER_LEN..]
}

fn entries(kind: u8, mut f: impl FnMut(*const u8)) {
    let mut rest = config();
    while let Some(end) = rest.iter().position(|&b| b == 0) {
        if end == 0 {
            break;
        }
        if rest[0] == kind {
            f(rest[1..].as_ptr());
        }
        rest = &rest[end + 1..];
    }
}

/// # Safety
/// Called once from `_start` with the initial stack pointer.
#[no_mangle]
unsafe extern "C" fn guard_main(sp: *const usize) -> ! {
    let argc = *sp;
    let argv = sp.add(1) as *const *const u8;
    let envp = argv.add(argc + 1) as *mut *const u8;
    let mut envc = 0;
    while !(*envp.add(envc)).is_null() {
        envc += 1;
    }
    let mut aux = envp.add(envc + 1) as *const usize;
    let (mut secure, mut execfd, mut flags) = (0, 0, 0);
    while *aux != AT_NULL {
        match *aux {
            AT_SECURE => secure = *aux.add(1),
            AT_EXECFD => execfd = *aux.add(1),
            AT_FLAGS => flags = *aux.add(1),
            _ => {}
        }
        aux = aux.add(2);
    }
    // With P: guard PATH ARGV0 ARGS...; without: guard PATH ARGS... (argv[0] lost).
    let first = if flags & AT_FLAGS_PRESERVE_ARGV0 != 0 {
        2
    } else {
        1
    };
    if argc <= first {
        fail(b"started without a binary to run", 126);
    }
    let argv0 = *argv.add(first);
    let mut fd_buf = [0u8; 40];
    let binary = if execfd > 0 {
        fd_path(execfd, &mut fd_buf);
        // qemu reopens it by this path and, failing, says nothing (its message sits in
        // an unflushed buffer): an execute-only program that is not setuid fails here.
        let args = [
            AT_FDCWD as usize,
            fd_buf.as_ptr() as usize,
            O_RDONLY_CLOEXEC,
            0,
            0,
            0,
        ];
        match syscall6(nr::OPENAT, args) {
            e if e == -EACCES => {
                let path = c_str(*argv.add(1));
                say(&[
                    b"sysroot-mk qemu guard: `",
                    path,
                    b"` is execute-only for the ids it ",
                ]);
                say(&[b"runs with (not setuid root), and qemu must read the programs it runs\n"]);
                exit(126);
            }
            // No /proc here (a mount namespace of the user's own): the path will do,
            // unless credentials came with the binary.
            e if e == -ENOENT && secure == 0 => *argv.add(1),
            e if e == -ENOENT => fail(b"no /proc to hand qemu the binary through", 126),
            _ => fd_buf.as_ptr(),
        }
    } else if secure != 0 {
        // The path may name another file by now: never run it with these credentials.
        fail(
            b"no AT_EXECFD on a secure execution (register with flag O)",
            126,
        )
    } else {
        *argv.add(1)
    };
    if secure != 0 {
        let mut kept = 0;
        for i in 0..envc {
            let var = *envp.add(i);
            let name = c_str(var);
            if !SCRUBBED.iter().any(|p| starts_with(name, p)) {
                *envp.add(kept) = var;
                kept += 1;
            }
        }
        *envp.add(kept) = core::ptr::null();
    }
    let mut extra = 0;
    entries(b'a', |_| extra += 1);
    // `-L /` also turns off qemu's built-in prefix (/etc/qemu-binfmt/<arch> inside).
    let no_prefix: [*const u8; 2] = [b"-L\0".as_ptr(), b"/\0".as_ptr()];
    if secure != 0 {
        extra += no_prefix.len();
    }
    let slots = 3 + extra + 1 + (argc - first - 1) + 1;
    let bytes = slots * core::mem::size_of::<usize>();
    // PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
    let mem = syscall6(nr::MMAP, [0, bytes, 3, 0x22, usize::MAX, 0]);
    if mem < 0 && mem > -4096 {
        fail(b"out of memory", 126);
    }
    let new = mem as *mut *const u8;
    let mut n = 1;
    let mut push = |p: *const u8| {
        *new.add(n) = p;
        n += 1;
    };
    push(b"-0\0".as_ptr());
    push(argv0);
    entries(b'a', &mut push);
    if secure != 0 {
        no_prefix.iter().for_each(|p| push(*p));
    }
    push(binary);
    for i in first + 1..argc {
        push(*argv.add(i));
    }
    push(core::ptr::null());
    let mut last: isize = -ENOENT;
    let mut tried = false;
    entries(b'q', |qemu| {
        if last == -ENOENT {
            tried = true;
            *new = qemu;
            let args = [qemu as usize, new as usize, envp as usize, 0, 0, 0];
            last = syscall6(nr::EXECVE, args);
        }
    });
    if !tried {
        fail(b"no qemu configured", 126);
    }
    let qemu = c_str(*new);
    let code = if last == -ENOENT { 127 } else { 126 };
    // The errno in decimal: the digits `fd_path` writes after its 14-byte prefix.
    let mut num = [0u8; 40];
    fd_path((-last) as usize, &mut num);
    let errno = c_str(num.as_ptr().add(14));
    say(&[
        b"sysroot-mk qemu guard: cannot execute `",
        qemu,
        b"` (errno ",
        errno,
        b")\n",
    ]);
    exit(code)
}
