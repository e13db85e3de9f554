//! Interface names for scope ids and SO_BINDTODEVICE indexes.
use std::ffi::CStr;

/// `if_indextoname` in the agent's network namespace, or the number when it has no name
/// there (the traced process may live in another namespace).
pub fn name_of(index: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        index.to_string()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
