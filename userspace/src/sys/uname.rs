//! Raw `uname(2)`: which kernel is running.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;

/// The running kernel's release string (`uname -r`), e.g. `6.18.4-arch1-1`.
pub fn release() -> io::Result<String> {
    let mut uts = MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: `uts` points to writable memory the size of a `utsname`, which `uname` fills.
    let rc = unsafe { libc::uname(uts.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `uname` returned 0, so it initialised every field of `uts`.
    let uts = unsafe { uts.assume_init() };
    // The kernel NUL-terminates each field; `from_bytes_until_nul` checks rather than trusts that.
    let bytes: Vec<u8> = uts.release.iter().map(|&c| c as u8).collect();
    let release = CStr::from_bytes_until_nul(&bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "uname release is not NUL-terminated"))?;
    Ok(release.to_string_lossy().into_owned())
}
