//! Private mount namespaces: how the scripts' `/proc` and the host binfmt_misc table
//! get mounted without the host's mount table ever seeing them.
//!
//! Through libc rather than rustix: these run in cloned children before exec, where
//! only raw system calls on arguments prepared beforehand are safe, and their callers
//! (`scripts::proc`, `scripts::child`) make their own mounts with libc for that reason.

/// Moves the calling thread into a mount namespace of its own whose mounts do not
/// propagate back to the host (`unshare(CLONE_NEWNS)`, which implies `CLONE_FS`, then
/// `/` made recursively private); 0 on success, -1 with errno set. Only system calls,
/// no allocation: it also runs in a cloned child before exec.
///
/// # Safety
/// Changes the calling thread's mount namespace and root/cwd sharing; the caller must
/// not rely on other threads seeing mounts it makes afterwards.
pub unsafe fn enter_private() -> libc::c_int {
    if libc::unshare(libc::CLONE_NEWNS) != 0 {
        return -1;
    }
    make_private()
}

/// Makes every mount of the calling thread's mount namespace private (`/` recursively),
/// so nothing mounted from now on propagates to the namespace it was copied from; 0 on
/// success, -1 with errno set. Only a system call, no allocation.
///
/// # Safety
/// Changes propagation for the whole mount namespace of the caller: call it only in a
/// namespace the caller made its own.
pub unsafe fn make_private() -> libc::c_int {
    libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    )
}
