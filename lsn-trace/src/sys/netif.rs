//! Interface names for scope ids and SO_BINDTODEVICE indexes. An index means something
//! only in its network namespace (a container's eth0 is index 2 there, and the host's
//! index 2 is another interface): the story reads each namespace's names from inside it
//! (`IfNames::here`, with its other facts) and hands the event's to the renderers for the
//! time they render it (`rendering_with`); `name_of` answers from those, and only where
//! no namespace is known (outside the pipeline) from the agent's own.
use std::{cell::RefCell, ffi::CStr, sync::Arc};

/// The interfaces of one network namespace, by index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IfNames(Vec<(u32, Box<str>)>);

impl IfNames {
    /// The calling thread's network namespace's interfaces (`if_nameindex`); empty when
    /// they cannot be listed (then every index stays a number).
    pub fn here() -> IfNames {
        // SAFETY: if_nameindex returns an array ended by a zero entry, freed below.
        let list = unsafe { libc::if_nameindex() };
        if list.is_null() {
            return IfNames::default();
        }
        let mut names = Vec::new();
        let mut at = list;
        loop {
            // SAFETY: an entry of the array, up to and including the zero one.
            let e = unsafe { &*at };
            if e.if_index == 0 || e.if_name.is_null() {
                break;
            }
            let name = unsafe { CStr::from_ptr(e.if_name) }.to_string_lossy();
            names.push((e.if_index, name.into()));
            at = unsafe { at.add(1) };
        }
        // SAFETY: the array if_nameindex returned, freed once.
        unsafe { libc::if_freenameindex(list) };
        IfNames(names)
    }

    pub fn get(&self, index: u32) -> Option<&str> {
        self.0.iter().find(|(i, _)| *i == index).map(|(_, n)| &**n)
    }

    #[cfg(test)]
    pub fn of(names: &[(u32, &str)]) -> IfNames {
        IfNames(names.iter().map(|&(i, n)| (i, n.into())).collect())
    }
}

thread_local! {
    /// The names of the namespace of the event being rendered (`rendering_with`).
    static RENDERING: RefCell<Option<Arc<IfNames>>> = const { RefCell::new(None) };
}

/// `f` run with `names` as the namespace `name_of` answers for (None: the agent's own).
pub fn rendering_with<R>(names: Option<&Arc<IfNames>>, f: impl FnOnce() -> R) -> R {
    let Some(names) = names else { return f() };
    let before = RENDERING.with(|r| r.replace(Some(names.clone())));
    let out = f();
    RENDERING.with(|r| *r.borrow_mut() = before);
    out
}

/// The name of interface `index` in the namespace of the event being rendered, or the
/// number when it has none there (never another namespace's name); outside an event's
/// rendering, `if_indextoname` in the agent's own namespace.
pub fn name_of(index: u32) -> String {
    if let Some(name) = RENDERING.with(|r| {
        r.borrow().as_ref().map(|names| {
            names
                .get(index)
                .map_or_else(|| index.to_string(), str::to_owned)
        })
    }) {
        return name;
    }
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        index.to_string()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_events_namespace_while_it_is_rendered() {
        let here = IfNames::here();
        assert_eq!(here.get(1), Some("lo"));
        assert_eq!(name_of(1), "lo");
        let theirs = Arc::new(IfNames::of(&[(1, "lo"), (2, "ctr0")]));
        rendering_with(Some(&theirs), || {
            assert_eq!(name_of(2), "ctr0");
            // An index their namespace lacks is a number, whatever the agent's has.
            assert_eq!(name_of(1_000_000), "1000000");
            assert_eq!(name_of(3), "3");
        });
        assert_eq!(name_of(1), "lo", "reset after");
        rendering_with(None, || assert_eq!(name_of(1), "lo"));
    }
}
