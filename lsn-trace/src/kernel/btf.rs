//! A small read-only parser of raw BTF, the kernel's type information
//! (`/sys/kernel/btf/vmlinux`), just enough to find struct member offsets and enumerator
//! values at start-up: Rust eBPF gets no CO-RE relocations, so the agent looks the layout up
//! itself.
//!
//! * [`Btf::from_sys`] loads the running kernel's BTF, [`Btf::parse`] any raw blob
//!   (little-endian only, like the eBPF target).
//! * [`Btf::composite`] finds a struct or union by name.
//! * [`Btf::member`] finds a member by dotted path (`"ns.inum"`), looking into anonymous
//!   struct/union members and through typedefs and modifiers as C name lookup does, and gives
//!   its bit offset from the start of the outer struct and, for a bitfield, its width.
//! * [`Btf::size_of`] gives a type's size in bytes, through typedefs and modifiers.
//! * [`Btf::enum_value`] gives the value of an enumerator (`INET_FLAGS_FREEBIND`).
//!
//! Lookups by name take the first match: vmlinux BTF holds a handful of same-named structs
//! private to different files, none of them the core structs this agent reads.

use anyhow::{Context, Result, bail, ensure};

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const HEADER_LEN: usize = 24;
/// BTF does not record the pointer size; kernel pointers are 8 bytes on every 64-bit
/// architecture eBPF programs run on.
const PTR_SIZE: u32 = 8;
/// Bound on typedef/modifier chains and on nesting of anonymous members, so that a corrupt
/// blob with a reference cycle cannot hang the agent.
const MAX_DEPTH: u32 = 32;

/// Index of a type in the blob; 0 is `void`.
pub type TypeId = u32;

/// A struct member found by [`Btf::member`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub type_id: TypeId,
    /// From the start of the struct searched, including the offsets of enclosing members.
    pub bit_offset: u32,
    /// Width of a bitfield; 0 for an ordinary member.
    pub bitfield_size: u32,
}

/// The parsed type table and the string section its names point into.
pub struct Btf {
    /// Indexed by type id.
    types: Vec<Type>,
    strings: Vec<u8>,
}

struct Type {
    /// Offset of the name in the string section; 0 (the empty string) for anonymous types.
    name: u32,
    kind: Kind,
}

/// What the lookups need of each type; everything else is skipped while parsing.
enum Kind {
    /// `bits`/`bit_offset` only matter for bitfields encoded the pre-kind_flag way.
    Int {
        size: u32,
        bits: u32,
        bit_offset: u32,
    },
    /// A pointer to this type.
    Ptr(TypeId),
    Array {
        elem: TypeId,
        len: u32,
    },
    /// A struct or union; members as (name offset, member).
    Composite {
        size: u32,
        members: Vec<(u32, Member)>,
    },
    /// ENUM or ENUM64, as (name offset, value).
    Enum {
        size: u32,
        values: Vec<(u32, i64)>,
    },
    Float {
        size: u32,
    },
    /// TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG: look through to the referenced type.
    Alias(TypeId),
    /// A function, by its FUNC_PROTO.
    Func(TypeId),
    /// A function's parameter types.
    FuncProto(Vec<TypeId>),
    /// FWD, VAR, DATASEC, DECL_TAG: sizeless for our purposes.
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + 4)
            .context("truncated BTF type section")?;
        self.pos += 4;
        Ok(u32::from_le_bytes(bytes.try_into().unwrap()))
    }

    fn skip(&mut self, words: u32) -> Result<()> {
        for _ in 0..words {
            self.u32()?;
        }
        Ok(())
    }
}

impl Btf {
    /// Load the running kernel's BTF.
    pub fn from_sys() -> Result<Btf> {
        let bytes = match std::fs::read(VMLINUX) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{VMLINUX} does not exist: this kernel was built without \
                 CONFIG_DEBUG_INFO_BTF, so kernel struct offsets cannot be resolved"
            ),
            r => r.with_context(|| format!("reading {VMLINUX}"))?,
        };
        Self::parse(&bytes).with_context(|| format!("parsing {VMLINUX}"))
    }

    /// Parse a raw BTF blob (header, type section, string section).
    pub fn parse(bytes: &[u8]) -> Result<Btf> {
        ensure!(
            bytes.len() >= HEADER_LEN,
            "BTF blob too short for its header"
        );
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        match u16::from_le_bytes([bytes[0], bytes[1]]) {
            0xeb9f => {}
            0x9feb => bail!("big-endian BTF is not supported"),
            m => bail!("not BTF (magic {m:#06x})"),
        }
        ensure!(bytes[2] == 1, "unsupported BTF version {}", bytes[2]);
        let hdr_len = word(4) as usize;
        ensure!(
            hdr_len >= HEADER_LEN,
            "BTF header length {hdr_len} too short"
        );
        let section = |off: usize, len: usize, what: &str| {
            hdr_len
                .checked_add(off)
                .and_then(|start| bytes.get(start..start.checked_add(len)?))
                .with_context(|| format!("BTF {what} section out of bounds"))
        };
        let type_sec = section(word(8) as usize, word(12) as usize, "type")?;
        let strings = section(word(16) as usize, word(20) as usize, "string")?.to_vec();

        let mut types = vec![Type {
            name: 0,
            kind: Kind::Other,
        }]; // id 0: void
        let mut r = Reader {
            buf: type_sec,
            pos: 0,
        };
        while r.pos < type_sec.len() {
            let id = types.len();
            let name = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let kind = parse_kind(&mut r, info, size_or_type)
                .with_context(|| format!("BTF type id {id}"))?;
            types.push(Type { name, kind });
        }
        Ok(Btf { types, strings })
    }

    /// The first struct or union called `name`.
    pub fn composite(&self, name: &str) -> Option<TypeId> {
        // A linear scan: the agent makes a dozen look-ups once, an index would cost more.
        let id = self.types.iter().position(|t| {
            matches!(t.kind, Kind::Composite { .. }) && self.name(t.name) == name.as_bytes()
        })?;
        Some(id as TypeId)
    }

    /// The member at dotted `path` inside struct or union `ty`.
    pub fn member(&self, ty: TypeId, path: &str) -> Option<Member> {
        let mut found = Member {
            type_id: ty,
            bit_offset: 0,
            bitfield_size: 0,
        };
        for name in path.split('.') {
            if name.is_empty() {
                return None;
            }
            let m = self.find_member(found.type_id, name.as_bytes(), 0)?;
            found = Member {
                bit_offset: found.bit_offset.checked_add(m.bit_offset)?,
                ..m
            };
        }
        Some(found)
    }

    /// Size in bytes of type `ty`; None for types without one (void, functions, forward
    /// declarations).
    pub fn size_of(&self, ty: TypeId) -> Option<u32> {
        self.size_at(ty, 0)
    }

    /// Value of the enumerator `name`; None if absent or defined with different values in
    /// different enums. An ENUM64 value above `i64::MAX` comes back as its bit pattern.
    pub fn enum_value(&self, name: &str) -> Option<i64> {
        let values = self.types.iter().flat_map(|t| match &t.kind {
            Kind::Enum { values, .. } => values.as_slice(),
            _ => &[],
        });
        let mut matching = values
            .filter(|(n, _)| self.name(*n) == name.as_bytes())
            .map(|&(_, v)| v);
        let first = matching.next()?;
        matching.all(|v| v == first).then_some(first)
    }

    /// The type id of kernel function `name` (what BPF_PROG_LOAD's `attach_btf_id` takes).
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| matches!(t.kind, Kind::Func(_)) && self.name(t.name) == name.as_bytes())
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The parameter types of kernel function `name`, None when BTF has no such function
    /// (never built, or inlined everywhere).
    pub fn func_params(&self, name: &str) -> Option<&[TypeId]> {
        let proto = self.types.iter().find_map(|t| match t.kind {
            Kind::Func(proto) if self.name(t.name) == name.as_bytes() => Some(proto),
            _ => None,
        })?;
        match self.kind(proto)? {
            Kind::FuncProto(params) => Some(params),
            _ => None,
        }
    }

    /// The name of the struct `ty` points to (`struct sock *` -> "sock").
    pub fn pointee_name(&self, ty: TypeId) -> Option<String> {
        let Kind::Ptr(to) = self.kind(self.strip(ty)?)? else {
            return None;
        };
        let to = self.strip(*to)?;
        let t = self.types.get(to as usize)?;
        matches!(t.kind, Kind::Composite { .. })
            .then(|| String::from_utf8_lossy(self.name(t.name)).into_owned())
    }

    /// The name `ty` is spelled with (a typedef's own name, not what it stands for).
    pub fn type_name(&self, ty: TypeId) -> Option<String> {
        let t = self.types.get(ty as usize)?;
        Some(String::from_utf8_lossy(self.name(t.name)).into_owned())
    }

    fn name(&self, offset: u32) -> &[u8] {
        let tail = self.strings.get(offset as usize..).unwrap_or_default();
        &tail[..tail.iter().position(|&b| b == 0).unwrap_or(tail.len())]
    }

    fn kind(&self, ty: TypeId) -> Option<&Kind> {
        Some(&self.types.get(ty as usize)?.kind)
    }

    /// `ty` with typedefs and modifiers peeled off.
    fn strip(&self, mut ty: TypeId) -> Option<TypeId> {
        for _ in 0..MAX_DEPTH {
            match self.kind(ty)? {
                Kind::Alias(next) => ty = *next,
                _ => return Some(ty),
            }
        }
        None
    }

    fn size_at(&self, ty: TypeId, depth: u32) -> Option<u32> {
        match self.kind(self.strip(ty)?)? {
            Kind::Int { size, .. }
            | Kind::Composite { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Float { size } => Some(*size),
            Kind::Ptr(_) => Some(PTR_SIZE),
            Kind::Array { elem, len } if depth < MAX_DEPTH => {
                self.size_at(*elem, depth + 1)?.checked_mul(*len)
            }
            _ => None,
        }
    }

    /// Depth first, descending into anonymous members: C makes their members visible by
    /// name in the enclosing struct.
    fn find_member(&self, ty: TypeId, name: &[u8], depth: u32) -> Option<Member> {
        let Kind::Composite { members, .. } = self.kind(self.strip(ty)?)? else {
            return None;
        };
        for (member_name, m) in members {
            let member_name = self.name(*member_name);
            if member_name == name {
                return self.legacy_bitfield(*m);
            }
            if member_name.is_empty()
                && depth < MAX_DEPTH
                && let Some(inner) = self.find_member(m.type_id, name, depth + 1)
            {
                let bit_offset = m.bit_offset.checked_add(inner.bit_offset)?;
                return Some(Member {
                    bit_offset,
                    ..inner
                });
            }
        }
        None
    }

    /// Without kind_flag (BTF from before pahole 1.13), a bitfield's width and extra bit
    /// offset are encoded in its INT type instead of in the member.
    fn legacy_bitfield(&self, m: Member) -> Option<Member> {
        if m.bitfield_size == 0
            && let Some(Kind::Int {
                size,
                bits,
                bit_offset,
            }) = self.kind(self.strip(m.type_id)?)
            && (size.checked_mul(8) != Some(*bits) || *bit_offset != 0)
        {
            let bit_offset = m.bit_offset.checked_add(*bit_offset)?;
            return Some(Member {
                bit_offset,
                bitfield_size: *bits,
                ..m
            });
        }
        Some(m)
    }
}

/// The kind-specific part of a type record: `info` packs vlen (bits 0-15), kind (24-28) and
/// kind_flag (31); every kind's trailing data must be consumed to reach the next record.
fn parse_kind(r: &mut Reader, info: u32, size_or_type: u32) -> Result<Kind> {
    let vlen = info & 0xffff;
    let kind_flag = info >> 31 != 0;
    Ok(match (info >> 24) & 0x1f {
        kind::INT => {
            let encoding = r.u32()?;
            let (bits, bit_offset) = (encoding & 0xff, (encoding >> 16) & 0xff);
            Kind::Int {
                size: size_or_type,
                bits,
                bit_offset,
            }
        }
        kind::PTR => Kind::Ptr(size_or_type),
        kind::ARRAY => {
            let [elem, _index_type, len] = [r.u32()?, r.u32()?, r.u32()?];
            Kind::Array { elem, len }
        }
        kind::STRUCT | kind::UNION => {
            let members = (0..vlen)
                .map(|_| {
                    let [name, type_id, offset] = [r.u32()?, r.u32()?, r.u32()?];
                    // With kind_flag the offset word also carries the bitfield width.
                    let (bit_offset, bitfield_size) = if kind_flag {
                        (offset & 0xff_ffff, offset >> 24)
                    } else {
                        (offset, 0)
                    };
                    Ok((
                        name,
                        Member {
                            type_id,
                            bit_offset,
                            bitfield_size,
                        },
                    ))
                })
                .collect::<Result<_>>()?;
            Kind::Composite {
                size: size_or_type,
                members,
            }
        }
        kind::ENUM => {
            let values = (0..vlen)
                .map(|_| {
                    let [name, v] = [r.u32()?, r.u32()?];
                    // kind_flag marks a signed enum.
                    Ok((name, if kind_flag { v as i32 as i64 } else { v as i64 }))
                })
                .collect::<Result<_>>()?;
            Kind::Enum {
                size: size_or_type,
                values,
            }
        }
        kind::ENUM64 => {
            let values = (0..vlen)
                .map(|_| {
                    let [name, lo, hi] = [r.u32()?, r.u32()?, r.u32()?];
                    Ok((name, ((hi as u64) << 32 | lo as u64) as i64))
                })
                .collect::<Result<_>>()?;
            Kind::Enum {
                size: size_or_type,
                values,
            }
        }
        kind::FLOAT => Kind::Float { size: size_or_type },
        kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
            Kind::Alias(size_or_type)
        }
        kind::FWD => Kind::Other,
        kind::FUNC => Kind::Func(size_or_type),
        kind::FUNC_PROTO => Kind::FuncProto(
            (0..vlen)
                .map(|_| {
                    let [_name, ty] = [r.u32()?, r.u32()?];
                    Ok(ty)
                })
                .collect::<Result<_>>()?,
        ),
        kind::VAR | kind::DECL_TAG => {
            r.skip(1)?; // linkage, component index
            Kind::Other
        }
        kind::DATASEC => {
            r.skip(3 * vlen)?; // variables: type, offset, size
            Kind::Other
        }
        k => bail!("unknown BTF kind {k}"),
    })
}

/// BTF kind numbers (`BTF_KIND_*`).
pub(crate) mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// Builds raw BTF blobs for tests: add types in id order, then `finish`.
    #[derive(Default)]
    pub(crate) struct Blob {
        words: Vec<u32>,
        strings: Vec<u8>,
        count: u32,
    }

    impl Blob {
        /// Offset of `s` in the string section ("" is the leading NUL).
        pub(crate) fn str(&mut self, s: &str) -> u32 {
            if self.strings.is_empty() {
                self.strings.push(0);
            }
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend(s.as_bytes());
            self.strings.push(0);
            at
        }

        /// Appends a type record with `extra` trailing words; returns its id.
        pub(crate) fn add(
            &mut self,
            name: &str,
            kind: u32,
            kind_flag: bool,
            vlen: u32,
            size_or_type: u32,
            extra: &[u32],
        ) -> TypeId {
            let name = self.str(name);
            let info = (kind_flag as u32) << 31 | kind << 24 | vlen;
            self.words.extend([name, info, size_or_type]);
            self.words.extend(extra);
            self.count += 1;
            self.count
        }

        pub(crate) fn int(&mut self, name: &str, size: u32, bits: u32, bit_offset: u32) -> TypeId {
            self.add(name, kind::INT, false, 0, size, &[bit_offset << 16 | bits])
        }

        /// A struct; `members` are (name, type, bit offset, bitfield width). Any width
        /// makes it a kind_flag struct; without, bitfields are encoded the legacy way.
        pub(crate) fn structure(
            &mut self,
            name: &str,
            size: u32,
            members: &[(&str, TypeId, u32, u32)],
        ) -> TypeId {
            self.composite(name, kind::STRUCT, size, members)
        }

        fn composite(
            &mut self,
            name: &str,
            kind: u32,
            size: u32,
            members: &[(&str, TypeId, u32, u32)],
        ) -> TypeId {
            let words: Vec<u32> = members
                .iter()
                .flat_map(|&(n, ty, off, bits)| [self.str(n), ty, bits << 24 | off])
                .collect();
            let kind_flag = members.iter().any(|m| m.3 > 0);
            self.add(name, kind, kind_flag, members.len() as u32, size, &words)
        }

        pub(crate) fn finish(mut self) -> Vec<u8> {
            self.str("");
            let types: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let (type_len, str_len) = (types.len() as u32, self.strings.len() as u32);
            let mut out = vec![0x9f, 0xeb, 1, 0];
            for w in [HEADER_LEN as u32, 0, type_len, type_len, str_len] {
                out.extend(w.to_le_bytes());
            }
            out.extend(types);
            out.extend(self.strings);
            out
        }
    }

    #[test]
    fn synthetic_blob() {
        let mut b = Blob::default();
        let uint = b.int("unsigned int", 4, 32, 0);
        let uchar = b.int("unsigned char", 1, 8, 0);
        // Every other kind, ahead of the structs: a record skipped with the wrong length
        // would shift every later id.
        let u8_t = b.add("u8", kind::TYPEDEF, false, 0, uchar, &[]);
        let const_u8 = b.add("", kind::CONST, false, 0, u8_t, &[]);
        let volatile_uint = b.add("", kind::VOLATILE, false, 0, uint, &[]);
        let ptr = b.add("", kind::PTR, false, 0, uint, &[]);
        b.add("", kind::RESTRICT, false, 0, ptr, &[]);
        let array = b.add("", kind::ARRAY, false, 0, 0, &[volatile_uint, uint, 3]);
        b.add("later", kind::FWD, false, 0, 0, &[]);
        let arg = b.str("arg");
        let proto = b.add("", kind::FUNC_PROTO, false, 2, uint, &[arg, ptr, 0, uint]);
        b.add("f", kind::FUNC, false, 0, proto, &[]);
        let var = b.add("v", kind::VAR, false, 0, uint, &[1]);
        b.add(".data", kind::DATASEC, false, 1, 4, &[var, 0, 4]);
        b.add("double", kind::FLOAT, false, 0, 8, &[]);
        b.add("tag", kind::DECL_TAG, false, 0, var, &[u32::MAX]);
        b.add("user", kind::TYPE_TAG, false, 0, ptr, &[]);
        let [neg, one] = [b.str("E_NEG"), b.str("E_ONE")];
        b.add("e", kind::ENUM, true, 2, 4, &[neg, -5i32 as u32, one, 1]);
        let (big, other_one) = (b.str("E_BIG"), b.str("E_ONE"));
        b.add(
            "e64",
            kind::ENUM64,
            false,
            2,
            8,
            &[big, 7, 0x8000_0000, other_one, 2, 0],
        );
        // struct outer {
        //     unsigned int a;
        //     unsigned char lo:4, hi:3;
        //     union { unsigned int u; struct { unsigned char x; const u8 y; }; };
        //     volatile unsigned int arr[3];
        //     unsigned int *p;
        //     pair_t s;  /* typedef struct { unsigned char x; const u8 y; } pair_t; */
        // };
        let xy = b.structure("", 2, &[("x", uchar, 0, 0), ("y", const_u8, 8, 0)]);
        let union = b.composite("", kind::UNION, 4, &[("u", uint, 0, 0), ("", xy, 0, 0)]);
        let pair_t = b.add("pair_t", kind::TYPEDEF, false, 0, xy, &[]);
        let outer = b.structure(
            "outer",
            40,
            &[
                ("a", uint, 0, 0),
                ("lo", uchar, 32, 4),
                ("hi", uchar, 36, 3),
                ("", union, 64, 0),
                ("arr", array, 96, 0),
                ("p", ptr, 192, 0),
                ("s", pair_t, 256, 0),
            ],
        );
        // Before kind_flag: `unsigned int bits:3` at bit 5 is an INT of 3 bits.
        let int3 = b.int("unsigned int", 4, 3, 0);
        let legacy = b.structure("legacy", 4, &[("c", uchar, 0, 0), ("bits", int3, 5, 0)]);
        let blob = b.finish();
        let btf = Btf::parse(&blob).unwrap();

        assert_eq!(btf.types.len() as u32, legacy + 1);
        assert_eq!(btf.composite("outer"), Some(outer));
        assert_eq!(btf.composite("missing"), None);
        let m = |path| {
            btf.member(outer, path)
                .map(|m| (m.bit_offset, m.bitfield_size))
        };
        assert_eq!(m("a"), Some((0, 0)));
        assert_eq!(m("lo"), Some((32, 4)));
        assert_eq!(m("hi"), Some((36, 3)));
        assert_eq!(m("u"), Some((64, 0)));
        assert_eq!(m("y"), Some((72, 0)));
        assert_eq!(m("arr"), Some((96, 0)));
        assert_eq!(m("s.y"), Some((264, 0)));
        assert_eq!(m("a.y"), None);
        assert_eq!(m("s."), None);
        assert_eq!(m("nope"), None);
        let size = |path| btf.size_of(btf.member(outer, path).unwrap().type_id);
        assert_eq!(size("y"), Some(1)); // const -> typedef -> int
        assert_eq!(size("arr"), Some(12));
        assert_eq!(size("p"), Some(8));
        assert_eq!(size("s"), Some(2));
        assert_eq!(btf.size_of(outer), Some(40));
        assert_eq!(btf.size_of(proto), None);
        let legacy_bits = btf.member(legacy, "bits").unwrap();
        assert_eq!((legacy_bits.bit_offset, legacy_bits.bitfield_size), (5, 3));
        assert_eq!(btf.member(legacy, "c").unwrap().bitfield_size, 0);
        assert_eq!(btf.enum_value("E_NEG"), Some(-5));
        assert_eq!(
            btf.enum_value("E_BIG"),
            Some((0x8000_0000u64 << 32 | 7) as i64)
        );
        assert_eq!(btf.enum_value("E_ONE"), None, "defined twice, differently");
        assert_eq!(btf.enum_value("E_NONE"), None);

        // Corrupt blobs are errors, not panics.
        assert!(Btf::parse(&blob[..blob.len() - btf.strings.len() - 2]).is_err());
        assert!(Btf::parse(&blob[..10]).is_err());
        let mut bad_kind = blob.clone();
        bad_kind[HEADER_LEN + 7] = 20; // info's kind byte of type 1
        assert!(Btf::parse(&bad_kind).is_err());
        let mut swapped = blob;
        swapped[..2].copy_from_slice(&[0xeb, 0x9f]);
        assert!(Btf::parse(&swapped).is_err());
    }

    /// The running kernel's BTF, or None (test skipped) on a kernel without it.
    pub(crate) fn host_btf() -> Option<Btf> {
        if !std::path::Path::new(VMLINUX).exists() {
            eprintln!("skipped: {VMLINUX} absent");
            return None;
        }
        Some(Btf::from_sys().unwrap())
    }

    /// The BTF of Debian's 6.1 and 6.12 kernels (captured by `cargo xtask vm`, xz-compressed
    /// in tests/fixtures/btf), decompressed: (fixture path, raw BTF), in name order.
    pub(crate) fn debian_fixtures() -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/btf");
        let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".btf.xz"))
            .collect();
        fixtures.sort();
        assert_eq!(fixtures.len(), 2, "{fixtures:?}");
        fixtures
            .into_iter()
            .map(|xz| {
                // xz-utils is part of every Debian system.
                let out = Command::new("xz")
                    .arg("-dc")
                    .arg(&xz)
                    .output()
                    .expect("run xz (xz-utils)");
                assert!(out.status.success(), "xz -dc {}", xz.display());
                (xz, out.stdout)
            })
            .collect()
    }

    /// bpftool's raw dump of the host's BTF, if bpftool is installed.
    pub(crate) fn bpftool_raw() -> Option<String> {
        bpftool_raw_of(VMLINUX)
    }

    /// bpftool's raw dump of the BTF file at `path`, if bpftool is installed.
    pub(crate) fn bpftool_raw_of(path: &str) -> Option<String> {
        // Debian installs it in /usr/sbin, not always on a user's PATH.
        let out = ["bpftool", "/usr/sbin/bpftool"].iter().find_map(|cmd| {
            let args = ["btf", "dump", "file", path, "format", "raw"];
            Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
        out.map(|o| String::from_utf8(o.stdout).unwrap())
    }

    /// Members of struct `name` in bpftool's raw dump: (id, [(name, type, bit offset, bitfield
    /// width)]), anonymous members left out.
    pub(crate) fn bpftool_struct<'a>(
        raw: &'a str,
        name: &str,
    ) -> (TypeId, Vec<(&'a str, TypeId, u32, u32)>) {
        let header = format!("STRUCT '{name}' ");
        let mut lines = raw.lines().skip_while(|l| !l.contains(&header));
        let id = lines.next().unwrap()[1..]
            .split(']')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let members = lines
            .take_while(|l| l.starts_with('\t'))
            .filter_map(|l| {
                let mut words = l.trim().split(' ');
                let name = words.next()?.trim_matches('\'');
                let mut num =
                    |key: &str| -> Option<u32> { words.next()?.strip_prefix(key)?.parse().ok() };
                let (ty, off) = (num("type_id=")?, num("bits_offset=")?);
                let bits = num("bitfield_size=").unwrap_or(0);
                (name != "(anon)").then_some((name, ty, off, bits))
            })
            .collect();
        (id, members)
    }

    #[test]
    fn host_btf_matches_bpftool() {
        let Some(btf) = host_btf() else { return };
        let Some(raw) = bpftool_raw() else {
            eprintln!("skipped: bpftool not installed");
            return;
        };
        // Same number of types: every kind's record was skipped with the right length.
        let last = raw
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok());
        assert_eq!(Some(btf.types.len() - 1), last);
        for name in [
            "sock_common",
            "sock",
            "inet_sock",
            "socket",
            "file",
            "fdtable",
            "files_struct",
            "task_struct",
            "net",
            "ns_common",
        ] {
            let (id, members) = bpftool_struct(&raw, name);
            assert_eq!(btf.composite(name), Some(id), "{name}");
            assert!(!members.is_empty(), "{name}");
            for (member, ty, off, bits) in members {
                let m = Member {
                    type_id: ty,
                    bit_offset: off,
                    bitfield_size: bits,
                };
                assert_eq!(btf.member(id, member), Some(m), "{name}.{member}");
            }
        }
        let (_, sk_common) = bpftool_struct(&raw, "sock_common");
        assert!(
            sk_common.iter().any(|m| m.0 == "skc_reuse" && m.3 == 4),
            "a bitfield was compared"
        );
        let freebind = raw
            .lines()
            .find_map(|l| l.trim().strip_prefix("'INET_FLAGS_FREEBIND' val="));
        assert_eq!(
            btf.enum_value("INET_FLAGS_FREEBIND"),
            freebind.map(|v| v.parse().unwrap())
        );
    }
}
