//! Loads the TPM Software Stack (`libtss2-esys`, `-mu`, `-tctildr`, `-sys`, and through
//! them `libcrypto`) on first use instead of at every process start (x86_64 Linux).
//!
//! Why: `posture check` never talks to the TPM (its `tpm` check reads sysfs), yet linking
//! tss-esapi the ordinary way made the dynamic loader open, map and bind these libraries
//! (≈ 4,700 symbol relocations, bound at start under full RELRO) on every run — a large
//! share of the 10 ms `posture check` budget (BENCHMARKS.md, issue 17).
//!
//! How: this module defines every `Esys_*`, `Tss2_*` function tss-esapi calls as a small
//! trampoline in the binary itself, so the linker (which passes `--as-needed`) no longer
//! records the libraries as needed. A trampoline jumps through its slot; an empty slot
//! goes to a resolver that `dlopen`s the libraries by their sonames (the same search the
//! loader does at start: `ld.so.cache`, system directories, no `RUNPATH` of ours), looks
//! every symbol up with `dlsym`, fills all slots at once and then makes the slots'
//! page(s) read-only, as full RELRO does for the GOT. A missing library or symbol is
//! reported by [`ensure_loaded`] (which [`super::Tpm::open`] calls first) as an error;
//! a call that reaches a trampoline without it aborts with the reason, as the loader
//! did at start before.
//!
//! posture-cli's test `tpm_cli::the_tss_libraries_are_not_loaded_at_start` checks that
//! the built `posture` binary does not load the libraries at start (a function missing
//! from `SYMBOLS` would silently bring them back), and its swtpm tests go through the
//! trampolines.
//!
//! Nothing here changes what the TSS does: the same libraries, the same functions.

use std::ffi::{c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The libraries, by soname, in lookup order (each function is taken from the first that
/// has it). These are the upstream tpm2-tss sonames (Debian, Fedora, Arch alike).
const LIBRARIES: [&CStr; 4] = [
    c"libtss2-esys.so.0",
    c"libtss2-mu.so.0",
    c"libtss2-tctildr.so.0",
    c"libtss2-sys.so.1",
];

/// Declares the trampolines and the table of their names (same order as the slots).
macro_rules! lazy_symbols {
    ($($name:ident),* $(,)?) => {
        /// Every TSS function reached through a trampoline.
        pub(crate) const SYMBOLS: &[&str] = &[$(stringify!($name)),*];

        // SAFETY (of the assembly as a whole): each trampoline only reads its own slot
        // and jumps, leaving every argument register untouched; the resolver saves and
        // restores all argument registers (integer, vector, and `rax`, the vector count
        // of variadic calls) around the call into Rust, and keeps the stack 16-byte
        // aligned for it (System V AMD64 ABI).
        std::arch::global_asm!(
            // The slots: zero (unresolved) until the resolver fills them all, then made
            // read-only. Page-aligned and padded to whole pages so that `mprotect`
            // covers nothing else.
            ".pushsection .bss.posture_tss_slots,\"aw\",@nobits",
            ".p2align 12",
            "posture_tss_slots:",
            $(concat!("posture_tss_slot_", stringify!($name), ": .zero 8"),)*
            ".p2align 12",
            "posture_tss_slots_end:",
            ".popsection",
            ".pushsection .text.posture_tss,\"ax\",@progbits",
            $(
                concat!(".globl ", stringify!($name)),
                concat!(".hidden ", stringify!($name)),
                concat!(".type ", stringify!($name), ",@function"),
                ".p2align 4",
                concat!(stringify!($name), ":"),
                concat!("mov r11, qword ptr [rip + posture_tss_slot_", stringify!($name), "]"),
                "test r11, r11",
                "jz 2f",
                "jmp r11",
                concat!("2: lea r11, [rip + posture_tss_slot_", stringify!($name), "]"),
                "jmp posture_tss_resolve_trampoline",
                concat!(".size ", stringify!($name), ", . - ", stringify!($name)),
            )*
            // r11 = the slot's address. On entry rsp is 8 mod 16 (the caller's return
            // address); after `push rbp` and 192 bytes it is 0 mod 16 for the call.
            ".p2align 4",
            "posture_tss_resolve_trampoline:",
            "push rbp",
            "mov rbp, rsp",
            "sub rsp, 192",
            "mov [rsp], rdi",
            "mov [rsp + 8], rsi",
            "mov [rsp + 16], rdx",
            "mov [rsp + 24], rcx",
            "mov [rsp + 32], r8",
            "mov [rsp + 40], r9",
            "mov [rsp + 48], rax",
            "movdqu [rsp + 64], xmm0",
            "movdqu [rsp + 80], xmm1",
            "movdqu [rsp + 96], xmm2",
            "movdqu [rsp + 112], xmm3",
            "movdqu [rsp + 128], xmm4",
            "movdqu [rsp + 144], xmm5",
            "movdqu [rsp + 160], xmm6",
            "movdqu [rsp + 176], xmm7",
            "mov rdi, r11",
            "call {resolve}@PLT",
            "mov r11, rax",
            "mov rdi, [rsp]",
            "mov rsi, [rsp + 8]",
            "mov rdx, [rsp + 16]",
            "mov rcx, [rsp + 24]",
            "mov r8, [rsp + 32]",
            "mov r9, [rsp + 40]",
            "mov rax, [rsp + 48]",
            "movdqu xmm0, [rsp + 64]",
            "movdqu xmm1, [rsp + 80]",
            "movdqu xmm2, [rsp + 96]",
            "movdqu xmm3, [rsp + 112]",
            "movdqu xmm4, [rsp + 128]",
            "movdqu xmm5, [rsp + 144]",
            "movdqu xmm6, [rsp + 160]",
            "movdqu xmm7, [rsp + 176]",
            "leave",
            "jmp r11",
            ".popsection",
            resolve = sym resolve,
        );
    };
}

lazy_symbols!(
    // Every TSS function the binary calls (`nm -D --undefined-only` of a normally
    // linked build); tpm_cli's the_tss_libraries_are_not_loaded_at_start fails when one
    // is missing.
    Esys_ActivateCredential,
    Esys_Certify,
    Esys_Create,
    Esys_CreatePrimary,
    Esys_Finalize,
    Esys_FlushContext,
    Esys_GetCapability,
    Esys_Initialize,
    Esys_Load,
    Esys_NV_DefineSpace,
    Esys_NV_Read,
    Esys_NV_ReadPublic,
    Esys_PCR_Read,
    Esys_PolicyGetDigest,
    Esys_PolicyPCR,
    Esys_PolicySecret,
    Esys_Quote,
    Esys_ReadPublic,
    Esys_Sign,
    Esys_StartAuthSession,
    Esys_TR_Close,
    Esys_TR_FromTPMPublic,
    Tss2_MU_TPMS_ATTEST_Marshal,
    Tss2_MU_TPMS_ATTEST_Unmarshal,
    Tss2_MU_TPMT_PUBLIC_Marshal,
    Tss2_MU_TPMT_PUBLIC_Unmarshal,
    Tss2_MU_TPMT_SIGNATURE_Marshal,
    Tss2_TctiLdr_Finalize,
    Tss2_TctiLdr_Initialize,
);

extern "C" {
    static posture_tss_slots: [AtomicUsize; 0];
    static posture_tss_slots_end: [AtomicUsize; 0];
}

/// Loads the libraries and fills every slot, once per process. `Err` says which library
/// or function is missing.
pub fn ensure_loaded() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED.get_or_init(load).clone()
}

fn load() -> Result<(), String> {
    let mut handles = Vec::with_capacity(LIBRARIES.len());
    for library in LIBRARIES {
        // SAFETY: a NUL-terminated soname; RTLD_NOW binds the library's own symbols at
        // once (as the loader did with BIND_NOW), RTLD_LOCAL keeps them out of the
        // global scope. The handle is never closed: the functions stay in use.
        let handle = unsafe { libc::dlopen(library.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "the TPM software stack is not installed: cannot load {} ({})",
                library.to_string_lossy(),
                dl_error()
            ));
        }
        handles.push(handle);
    }
    let slots = slots();
    for (name, slot) in SYMBOLS.iter().zip(slots) {
        let c_name = CString::new(*name).map_err(|e| e.to_string())?;
        let address = handles.iter().find_map(|&handle| {
            // SAFETY: `handle` is a live dlopen handle, `c_name` NUL-terminated.
            let found = unsafe { libc::dlsym(handle, c_name.as_ptr()) };
            (!found.is_null()).then_some(found as usize)
        });
        match address {
            Some(address) => slot.store(address, Ordering::Release),
            None => {
                return Err(format!(
                    "the installed TPM software stack lacks {name} (tpm2-tss too old?)"
                ))
            }
        }
    }
    protect(slots);
    Ok(())
}

/// The slots, as laid out by the assembly (one per [`SYMBOLS`] entry, in order).
fn slots() -> &'static [AtomicUsize] {
    // SAFETY: `posture_tss_slots` starts a zero-initialised, 8-aligned block with one
    // 8-byte slot per name in SYMBOLS (the assembly above emits exactly that many);
    // `AtomicUsize` has the layout of `usize`, and every access goes through atomics
    // (the trampolines' plain aligned 8-byte loads are atomic on x86_64).
    unsafe {
        std::slice::from_raw_parts(std::ptr::addr_of!(posture_tss_slots).cast(), SYMBOLS.len())
    }
}

/// Makes the slots' pages read-only now that they are filled (what RELRO does for the
/// GOT): a stray or hostile write can no longer redirect a TSS call.
fn protect(slots: &[AtomicUsize]) {
    let start = slots.as_ptr() as usize;
    let end = std::ptr::addr_of!(posture_tss_slots_end) as usize;
    // SAFETY: [start, end) is whole pages of our own section (page-aligned start and
    // end, see the assembly) holding nothing but the slots, which are never written again
    // (every slot was filled above, so no trampoline enters the resolver again).
    let rc = unsafe { libc::mprotect(start as *mut c_void, end - start, libc::PROT_READ) };
    if rc != 0 {
        // Not fatal: the slots are filled and correct, only left writable.
        tracing::warn!(
            "could not make the TSS function table read-only: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the C library,
    // copied at once.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

/// Called by a trampoline whose slot is still empty; returns the function's address.
extern "C" fn resolve(slot: *const AtomicUsize) -> usize {
    if let Err(reason) = ensure_loaded() {
        // A TSS function was called without going through `Tpm::open` (which reports
        // this as an error): there is no value of the function's return type to give
        // back, so stop as the dynamic loader did at start when the library was missing.
        eprintln!("posture: {reason}");
        std::process::abort();
    }
    // SAFETY: `slot` is one of our slots (the trampolines pass their own), filled by
    // `load` before `ensure_loaded` returned Ok.
    unsafe { (*slot).load(Ordering::Acquire) }
}
