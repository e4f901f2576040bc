//! What packing and unpacking share: the whiteout names, the device record, the
//! xattrs an image never carries, the data copy.
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// PAX record (a vendor keyword, ignored by other tools) of a character device 0/0 that
/// is a device, made through the union: without it a 0/0 member is an overlay whiteout.
pub const DEVICE_PAX: &str = "UNIONCTL.device";

/// Overlay's private xattrs, never part of an image.
pub fn is_overlay_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.") || b.starts_with(b"user.overlay.")
}

/// Copies with a large buffer (tar entries are not files, so no copy_file_range).
pub fn copy_data(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// For tests and logs: "a/b" as a relative path string.
pub fn rel_display(p: &Path) -> String {
    let mut s = String::new();
    for c in p.components() {
        if let Component::Normal(n) = c {
            s.push('/');
            s.push_str(&n.to_string_lossy());
        }
    }
    if s.is_empty() { "/".into() } else { s }
}
