//! Extended attributes, with overlayfs' escaping of `trusted.overlay.*` names.
use super::*;

impl UnionFs {
    pub fn getxattr(&self, ino: u64, name: &CStr, size: usize) -> io::Result<Vec<u8>> {
        if let Some(v) = self.virtual_xattr(ino, name.to_bytes()) {
            let v = v?;
            if size != 0 && v.len() > size {
                return Err(sys::errno(libc::ERANGE));
            }
            return Ok(v);
        }
        if self.layers.xattr.is_foreign(name.to_bytes()) {
            return Err(sys::errno(libc::ENODATA));
        }
        let node = self.node(ino)?;
        self.stable(|| {
            let st = node.snapshot();
            let (fd, p) = self.real(&node, &st)?;
            sys::lgetxattr_raw(fd, &p, &self.layers.xattr.to_real(name), size)
        })
    }

    pub fn listxattr(&self, ino: u64) -> io::Result<Vec<u8>> {
        let node = self.node(ino)?;
        let names = self.stable(|| {
            let st = node.snapshot();
            let (fd, p) = self.real(&node, &st)?;
            sys::llistxattr(fd, &p)
        })?;
        let mut out = Vec::new();
        for n in names {
            if let Some(shown) = self.layers.xattr.from_real(&n) {
                out.extend_from_slice(shown.as_bytes_with_nul());
            }
        }
        Ok(out)
    }

    pub fn setxattr(&self, ino: u64, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
        if self.layers.xattr.is_foreign(name.to_bytes()) {
            return Err(sys::errno(libc::EPERM));
        }
        let (_, fd, p) = self.copied_up(ino)?;
        sys::lsetxattr(fd, &p, &self.layers.xattr.to_real(name), value, flags)
    }

    pub fn removexattr(&self, ino: u64, name: &CStr) -> io::Result<()> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        if self.layers.xattr.is_foreign(name.to_bytes()) {
            return Err(sys::errno(libc::EPERM));
        }
        let real = self.layers.xattr.to_real(name);
        let name = real.as_c_str();
        let node = self.node(ino)?;
        let st = node.snapshot();
        if !st.upper && st.index.is_none() {
            let (fd, p) = self.real(&node, &st)?;
            sys::lgetxattr(fd, &p, name)?.ok_or_else(|| sys::errno(libc::ENODATA))?;
            self.copy_up(ino)?;
        }
        let st = node.snapshot();
        let (fd, p) = self.real(&node, &st)?;
        sys::lremovexattr(fd, &p, name)
    }
}
