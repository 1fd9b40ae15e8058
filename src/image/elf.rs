//! A small ELF reader: just enough of an executable's headers to know which dynamic
//! loader and shared libraries it needs (`PT_INTERP`, `DT_NEEDED`, `DT_RUNPATH`).
//!
//! It reads only the headers and the dynamic section, never the whole file: the
//! `claude` binary is 400 MB.

use std::io::{Read, Seek, SeekFrom};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

/// Headers this large are not a real executable's; refuse them rather than allocate.
const MAX_TABLE_BYTES: u64 = 16 << 20;

/// What an ELF file says about how it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    /// `e_machine`, e.g. [`EM_X86_64`].
    pub machine: u16,
    /// The dynamic loader (`PT_INTERP`); `None` for a static executable or a library.
    pub interp: Option<String>,
    /// `DT_NEEDED` sonames, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or the older `DT_RPATH`) entries, `$ORIGIN` not yet expanded.
    pub runpath: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("a 32-bit or big-endian ELF file, which claunch does not read")]
    Unsupported,
    #[error("a damaged ELF file ({0})")]
    Corrupt(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Program header fields that matter here.
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Reads the loading information of a 64-bit little-endian ELF file.
pub fn read<R: Read + Seek>(r: &mut R) -> Result<Elf, ElfError> {
    let mut ident = [0u8; 64];
    r.seek(SeekFrom::Start(0))?;
    let n = read_up_to(r, &mut ident)?;
    if n < 4 || &ident[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if n < 64 {
        return Err(ElfError::Corrupt("truncated header"));
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if ident[4] != 2 || ident[5] != 1 {
        return Err(ElfError::Unsupported);
    }
    let machine = u16_at(&ident, 18);
    let phoff = u64_at(&ident, 32);
    let phentsize = u64::from(u16_at(&ident, 54));
    let phnum = u64::from(u16_at(&ident, 56));
    if phnum > 0 && phentsize < 56 {
        return Err(ElfError::Corrupt("program headers too small"));
    }
    let table = read_at(r, phoff, phentsize * phnum)?;
    let segments: Vec<Segment> = table
        .chunks_exact(usize::try_from(phentsize.max(1)).unwrap_or(usize::MAX))
        .map(|h| Segment {
            kind: u32_at(h, 0),
            offset: u64_at(h, 8),
            vaddr: u64_at(h, 16),
            filesz: u64_at(h, 32),
        })
        .collect();

    let interp = match segments.iter().find(|s| s.kind == PT_INTERP) {
        Some(s) => Some(c_string(&read_at(r, s.offset, s.filesz)?, 0)?),
        None => None,
    };
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Ok(Elf {
            machine,
            interp,
            needed: Vec::new(),
            runpath: Vec::new(),
        });
    };
    let entries = read_at(r, dynamic.offset, dynamic.filesz)?;
    let mut needed_at = Vec::new();
    let mut runpath_at = None;
    let mut rpath_at = None;
    let (mut strtab, mut strsz) = (None, None);
    for entry in entries.chunks_exact(16) {
        let (tag, val) = (u64_at(entry, 0), u64_at(entry, 8));
        match tag {
            DT_NULL => break,
            DT_NEEDED => needed_at.push(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_RUNPATH => runpath_at = Some(val),
            DT_RPATH => rpath_at = Some(val),
            _ => {}
        }
    }
    if needed_at.is_empty() && runpath_at.is_none() && rpath_at.is_none() {
        return Ok(Elf {
            machine,
            interp,
            needed: Vec::new(),
            runpath: Vec::new(),
        });
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Err(ElfError::Corrupt("dynamic section without a string table"));
    };
    // DT_STRTAB is an address in memory: find the file offset through the segment that loads it.
    let offset = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find(|s| strtab >= s.vaddr && strtab - s.vaddr < s.filesz)
        .map(|s| s.offset + (strtab - s.vaddr))
        .ok_or(ElfError::Corrupt(
            "string table outside every loaded segment",
        ))?;
    let strings = read_at(r, offset, strsz)?;
    let needed = needed_at
        .iter()
        .map(|&at| c_string(&strings, at))
        .collect::<Result<Vec<_>, _>>()?;
    // The loader ignores DT_RPATH when DT_RUNPATH is present.
    let runpath = match runpath_at.or(rpath_at) {
        Some(at) => c_string(&strings, at)?
            .split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    Ok(Elf {
        machine,
        interp,
        needed,
        runpath,
    })
}

/// Reads an ELF file from disk.
pub fn read_file(path: &std::path::Path) -> Result<Elf, ElfError> {
    read(&mut std::fs::File::open(path)?)
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn read_at<R: Read + Seek>(r: &mut R, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
    if len > MAX_TABLE_BYTES {
        return Err(ElfError::Corrupt("a table larger than 16 MiB"));
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    r.seek(SeekFrom::Start(offset))?;
    if read_up_to(r, &mut buf)? < buf.len() {
        return Err(ElfError::Corrupt("a table past the end of the file"));
    }
    Ok(buf)
}

fn c_string(bytes: &[u8], at: u64) -> Result<String, ElfError> {
    let start = usize::try_from(at).map_err(|_| ElfError::Corrupt("string offset"))?;
    let rest = bytes
        .get(start..)
        .ok_or(ElfError::Corrupt("string past its table"))?;
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8(rest[..end].to_vec())
        .map_err(|_| ElfError::Corrupt("a name that is not UTF-8"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Cursor;

    use super::*;

    /// A minimal x86-64 ELF: one `PT_LOAD` mapping the file at 0x400000, an optional
    /// `PT_INTERP`, and a `PT_DYNAMIC` naming `needed` (and a runpath).
    pub(crate) fn synthetic(
        interp: Option<&str>,
        needed: &[&str],
        runpath: Option<&str>,
    ) -> Vec<u8> {
        const BASE: u64 = 0x40_0000;
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let at = strings.len() as u64;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at
        };
        let needed_at: Vec<u64> = needed.iter().map(|n| add(n)).collect();
        let runpath_at = runpath.map(&mut add);
        let interp_bytes = interp.map(|i| {
            let mut v = i.as_bytes().to_vec();
            v.push(0);
            v
        });
        let phnum = 2 + u64::from(interp.is_some());
        let interp_off = 64 + 56 * phnum;
        let interp_len = interp_bytes.as_ref().map_or(0, |b| b.len() as u64);
        let strtab_off = interp_off + interp_len;
        let dyn_off = strtab_off + strings.len() as u64;
        let mut dynamic: Vec<(u64, u64)> = needed_at.iter().map(|&at| (DT_NEEDED, at)).collect();
        if let Some(at) = runpath_at {
            dynamic.push((DT_RUNPATH, at));
        }
        dynamic.extend([
            (DT_STRTAB, BASE + strtab_off),
            (DT_STRSZ, strings.len() as u64),
            (DT_NULL, 0),
        ]);
        let dyn_len = 16 * dynamic.len() as u64;
        let total = dyn_off + dyn_len;

        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&3u16.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&u16::try_from(phnum).unwrap().to_le_bytes());
        let mut phdr = |kind: u32, offset: u64, size: u64| {
            let mut h = [0u8; 56];
            h[0..4].copy_from_slice(&kind.to_le_bytes());
            h[8..16].copy_from_slice(&offset.to_le_bytes());
            h[16..24].copy_from_slice(&(BASE + offset).to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h[40..48].copy_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&h);
        };
        if interp.is_some() {
            phdr(PT_INTERP, interp_off, interp_len);
        }
        phdr(PT_LOAD, 0, total);
        phdr(PT_DYNAMIC, dyn_off, dyn_len);
        if let Some(b) = interp_bytes {
            out.extend_from_slice(&b);
        }
        out.extend_from_slice(&strings);
        for (tag, val) in dynamic {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&val.to_le_bytes());
        }
        out
    }

    #[test]
    fn reads_interp_needed_and_runpath() {
        let bytes = synthetic(
            Some("/lib64/ld-linux-x86-64.so.2"),
            &["libm.so.6", "libc.so.6"],
            Some("$ORIGIN/../lib::/opt/x"),
        );
        let elf = read(&mut Cursor::new(bytes)).unwrap();
        assert_eq!(elf.machine, EM_X86_64);
        assert_eq!(elf.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(elf.needed, ["libm.so.6", "libc.so.6"]);
        assert_eq!(elf.runpath, ["$ORIGIN/../lib", "/opt/x"]);
        assert!(elf.interp.is_some() || !elf.needed.is_empty(), "not static");
    }

    #[test]
    fn a_library_has_needed_but_no_interp() {
        let elf = read(&mut Cursor::new(synthetic(None, &["libc.so.6"], None))).unwrap();
        assert_eq!(elf.interp, None);
        assert_eq!(elf.needed, ["libc.so.6"]);
    }

    #[test]
    fn the_test_binary_itself_needs_libc_through_the_host_loader() {
        let elf = read_file(&std::env::current_exe().unwrap()).unwrap();
        assert!(elf.interp.is_some(), "{elf:?}");
        assert!(
            elf.needed.iter().any(|n| n.starts_with("libc.so")),
            "{elf:?}"
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            read(&mut Cursor::new(b"#!/bin/sh\necho hi\n".to_vec())),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(
            read(&mut Cursor::new(Vec::new())),
            Err(ElfError::NotElf)
        ));
        let mut b32 = synthetic(None, &[], None);
        b32[4] = 1;
        assert!(matches!(
            read(&mut Cursor::new(b32)),
            Err(ElfError::Unsupported)
        ));
        let full = synthetic(Some("/lib64/ld.so"), &["libc.so.6"], None);
        let truncated = full[..full.len() - 20].to_vec();
        assert!(matches!(
            read(&mut Cursor::new(truncated)),
            Err(ElfError::Corrupt(_))
        ));
        assert!(matches!(
            read(&mut Cursor::new(full[..40].to_vec())),
            Err(ElfError::Corrupt(_))
        ));
    }
}
