//! Users from the passwd database (names as `--uid` and `--user` take them).
use std::ffi::{CStr, CString};

use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// getpwnam_r/getpwuid_r with a growing buffer.
fn lookup(
    by: impl Fn(*mut libc::passwd, &mut [u8], *mut *mut libc::passwd) -> i32,
) -> Option<User> {
    let mut buf = vec![0u8; 4096];
    loop {
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out = std::ptr::null_mut();
        match by(&mut pw, &mut buf, &mut out) {
            0 if out.is_null() => return None,
            0 => {
                let s = |p: *const libc::c_char| {
                    if p.is_null() {
                        String::new()
                    } else {
                        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                    }
                };
                return Some(User {
                    name: s(pw.pw_name),
                    uid: pw.pw_uid,
                    gid: pw.pw_gid,
                    home: s(pw.pw_dir),
                });
            }
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            _ => return None,
        }
    }
}

pub fn by_name(name: &str) -> Option<User> {
    let c = CString::new(name).ok()?;
    lookup(|pw, buf, out| unsafe {
        libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr().cast(), buf.len(), out)
    })
}

pub fn by_uid(uid: u32) -> Option<User> {
    lookup(|pw, buf, out| unsafe {
        libc::getpwuid_r(uid, pw, buf.as_mut_ptr().cast(), buf.len(), out)
    })
}

/// A user name or a numeric uid; a numeric uid need not be in the passwd database.
pub fn resolve(spec: &str) -> Result<User> {
    if let Some(u) = by_name(spec) {
        return Ok(u);
    }
    if let Ok(uid) = spec.parse::<u32>() {
        return Ok(by_uid(uid).unwrap_or(User {
            name: spec.to_owned(),
            uid,
            gid: uid,
            home: "/".into(),
        }));
    }
    bail!("no user `{spec}` in the passwd database (give a user name or a numeric uid)")
}

/// The supplementary groups `user` gets at login (getgrouplist), including its primary one.
pub fn groups(user: &User) -> Vec<libc::gid_t> {
    let Ok(name) = CString::new(user.name.as_str()) else {
        return vec![user.gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut gids = vec![0 as libc::gid_t; n as usize];
        let prev = n;
        let r = unsafe { libc::getgrouplist(name.as_ptr(), user.gid, gids.as_mut_ptr(), &mut n) };
        if r >= 0 {
            gids.truncate(n as usize);
            return gids;
        }
        if n <= prev {
            n = prev * 2;
        }
        if n > 65536 {
            return vec![user.gid];
        }
    }
}
