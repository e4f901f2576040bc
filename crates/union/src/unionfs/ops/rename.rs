//! rename(2): with RENAME_WHITEOUT, redirects or opaque dirs as overlayfs sets them, and
//! exchange.
use super::*;

/// A rename whose checks passed (see `rename_checked`).
struct Rename<'a> {
    op: u64,
    oname: &'a OsStr,
    np: u64,
    nname: &'a OsStr,
    exchange: bool,
    src: Found,
    dst: Option<Found>,
    opst: NodeState,
    npst: NodeState,
    dst_pure_upper: bool,
}

impl UnionFs {
    /// Overlayfs' "pure upper" dir: in the upper layer only, with no lower dir below and
    /// no copy-up origin, so it can hold no whiteouts (nor, in aufs format, an opaque
    /// marker).
    pub(super) fn pure_upper_dir(&self, f: &Found, path: &OsStr) -> io::Result<bool> {
        if f.upper.is_none() || !f.lowers.is_empty() {
            return Ok(false);
        }
        let ufd = self.upper()?;
        Ok(match self.layers.format {
            Format::Overlay => whiteout::get(ufd, path, &self.layers.xattr.origin)?.is_none(),
            Format::Aufs => !whiteout::is_opaque_dir(ufd, path, &self.layers.xattr, true)?,
        })
    }

    /// Puts the alias PARENT/NAME of a node first, so copy-up and path lookups use it.
    pub(super) fn prefer_alias(&self, node: &Node, parent: u64, name: &OsStr) {
        let mut st = node.lock();
        let a = (parent, name.to_owned());
        st.aliases.retain(|x| *x != a);
        st.aliases.insert(0, a);
    }

    /// rename(2); again when an ancestor's rename made a path stale (see `stable`).
    pub fn rename(
        &self,
        op: u64,
        oname: &OsStr,
        np: u64,
        nname: &OsStr,
        flags: u32,
    ) -> io::Result<()> {
        let r = self.stable(|| self.rename_now(op, oname, np, nname, flags));
        // A dir may have moved (or been replaced): recount both parents.
        self.subdirs_changed(op);
        self.subdirs_changed(np);
        // A rename that fails (ENOTEMPTY, EXDEV, ...) may have copied its source up first,
        // as overlayfs does, which changed the source's parent dir; the kernel refreshes
        // the parents' attributes only after a rename that succeeds.
        if r.is_err()
            && let Some(f) = self.on_attr_change.get()
        {
            f(op);
            if np != op {
                f(np);
            }
        }
        r
    }

    fn rename_now(
        &self,
        op: u64,
        oname: &OsStr,
        np: u64,
        nname: &OsStr,
        flags: u32,
    ) -> io::Result<()> {
        if self.read_only() {
            return Err(sys::errno(libc::EROFS));
        }
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        if flags & !(libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE) != 0 {
            return Err(sys::errno(libc::EINVAL));
        }
        self.check_new_name(nname)?;
        let (_, opst, oppath) = self.dir_path(op)?;
        let (_, npst, nppath) = self.dir_path(np)?;
        let src = self.resolve(&opst, &oppath, oname)?.ok_or_else(enoent)?;
        let dst = match self.resolve(&npst, &nppath, nname)? {
            Some(d) if flags & libc::RENAME_EXCHANGE == 0 => {
                Some(self.index_before_whiteout(np, nname, d, &npst, &nppath)?)
            }
            d => d,
        };
        if exchange && dst.is_none() {
            return Err(sys::errno(libc::ENOENT));
        }
        if noreplace && dst.is_some() {
            return Err(sys::errno(libc::EEXIST));
        }
        if op == np && oname == nname {
            return Ok(());
        }
        let src_dir = src.kind == libc::S_IFDIR;
        let dst_pure_upper = match &dst {
            Some(d) if !exchange && d.kind == libc::S_IFDIR => {
                self.pure_upper_dir(d, &join(&nppath, nname))?
            }
            _ => false,
        };
        let needs_redirect = |f: &Found| f.kind == libc::S_IFDIR && !f.lowers.is_empty();
        let moves_lower_dir =
            needs_redirect(&src) || (exchange && dst.as_ref().is_some_and(needs_redirect));
        // redirect_dir=off: the kernel cannot move a dir with lower content (ovl_can_move),
        // which it says after the VFS' ENOTDIR and EISDIR, before ENOTEMPTY.
        let cannot_move = !self.layers.create_redirects && moves_lower_dir;
        if let (Some(d), false) = (&dst, exchange) {
            if d.ino == src.ino && !src_dir {
                return Ok(()); // two names of one file: POSIX says do nothing
            }
            let dst_dir = d.kind == libc::S_IFDIR;
            if src_dir && !dst_dir {
                return Err(sys::errno(libc::ENOTDIR));
            }
            if !src_dir && dst_dir {
                return Err(sys::errno(libc::EISDIR));
            }
            if cannot_move {
                return Err(sys::errno(libc::EXDEV));
            }
            // A pure upper dir (no lower, never copied up) is left to the upper file
            // system, after the copy-ups, as overlayfs does: its ENOTEMPTY comes from
            // there, with whatever that rename changes on the way.
            if dst_dir && !dst_pure_upper {
                let dst_state = NodeState {
                    aliases: vec![],
                    upper: d.upper.is_some(),
                    lowers: d.lowers.as_slice().into(),
                    redirected: false,
                    metacopy: false,
                    index: None,
                    orphan: None,
                };
                if !self.dir_is_empty(&dst_state, &join(&nppath, nname))? {
                    return Err(sys::errno(libc::ENOTEMPTY));
                }
            }
        }
        if cannot_move {
            return Err(sys::errno(libc::EXDEV));
        }
        if self.layers.format == Format::Aufs && moves_lower_dir {
            // aufs has no redirects: move a whole copy instead, then rename plainly.
            for f in [Some(&src), dst.as_ref().filter(|_| exchange)]
                .into_iter()
                .flatten()
            {
                if needs_redirect(f) {
                    self.copy_up_tree(self.found_node(f)?.ino)?;
                }
            }
            return self.rename_now(op, oname, np, nname, flags);
        }
        self.rename_checked(Rename {
            op,
            oname,
            np,
            nname,
            exchange,
            src,
            dst,
            opst,
            npst,
            dst_pure_upper,
        })
    }

    /// The rename once its checks passed: copy-ups, marks, the move on disk, the table.
    fn rename_checked(&self, r: Rename) -> io::Result<()> {
        let Rename {
            op,
            oname,
            np,
            nname,
            exchange,
            src,
            dst,
            opst,
            npst,
            dst_pure_upper,
        } = r;
        let src_dir = src.kind == libc::S_IFDIR;
        let src_node = self.found_node(&src)?;
        self.copy_up(op)?;
        self.copy_up(np)?;
        self.prefer_alias(&src_node, op, oname);
        self.copy_up(src_node.ino)?;
        let dst_node = self.rename_dst_node(&dst, exchange, np, nname, &src_node)?;
        let oppath = self.path_of(op)?;
        let nppath = self.path_of(np)?;
        let ufd = self.upper()?;
        let opath = join(&oppath, oname);
        let npath = join(&nppath, nname);
        let new_lower = self.lower_visible(&npst, &nppath, nname)?;
        let old_lower = self.lower_visible(&opst, &oppath, oname)?;
        if op != np {
            let origin = &self.layers.xattr.origin;
            if whiteout::get(ufd, &opath, origin)?.is_some() {
                self.mark_impure(ufd, &nppath)?;
            }
            if exchange && whiteout::get(ufd, &npath, origin)?.is_some() {
                self.mark_impure(ufd, &oppath)?;
            }
        }
        // Before the move, as overlayfs: a failed rename leaves these behind there too.
        let opaque_into = |parent: &NodeState, lower_at: bool| match self.layers.format {
            Format::Overlay => !parent.lowers.is_empty(),
            Format::Aufs => lower_at,
        };
        let samedir = op == np;
        let into_new = opaque_into(&npst, new_lower);
        self.mark_moving_dir(&src_node, &src, &opath, oname, samedir, into_new)?;
        if let (Some(d), Some(dn), true) = (&dst, &dst_node, exchange) {
            let into_old = opaque_into(&opst, old_lower);
            self.mark_moving_dir(dn, d, &npath, nname, samedir, into_old)?;
        }
        // Paths derived from the table are stale from the move on disk until the table
        // follows: readers retry meanwhile (see `stable`).
        let _moving = self.nodes.start_move();
        if exchange {
            sys::renameat2(ufd, &opath, ufd, &npath, libc::RENAME_EXCHANGE)?;
        } else {
            let old = (oppath.as_os_str(), oname);
            let new = (nppath.as_os_str(), nname);
            self.replace_on_disk(ufd, old, new, src_dir, dst_pure_upper, old_lower)?;
        }
        self.follow_rename(&src_node, dst_node, (op, oname), (np, nname), exchange);
        Ok(())
    }

    /// The node at the destination of a rename: copied up when it moves too (exchange),
    /// else counted out of its index entry and kept as an orphan while it is held.
    fn rename_dst_node(
        &self,
        dst: &Option<Found>,
        exchange: bool,
        np: u64,
        nname: &OsStr,
        src_node: &Arc<Node>,
    ) -> io::Result<Option<Arc<Node>>> {
        Ok(match (dst, exchange) {
            (Some(d), true) => {
                let n = self.found_node(d)?;
                self.prefer_alias(&n, np, nname);
                self.copy_up(n.ino)?;
                Some(n)
            }
            (Some(d), false) => {
                if let (None, Some(ix), Some(ixfd)) = (&d.upper, &d.index, &self.layers.index) {
                    self.adjust_nlink(ixfd.as_raw_fd(), ix, -1)?;
                }
                let n = self.nodes.get_key(d.ino);
                if let Some(n) = &n
                    && !Arc::ptr_eq(n, src_node)
                {
                    self.keep_orphan(n, np, nname);
                }
                n
            }
            _ => None,
        })
    }

    /// The rename on disk of OLD to NEW (parent path, name), not an exchange: what is at
    /// NEW cleared first, and a whiteout left at OLD where a lower file shows (OLD_LOWER).
    fn replace_on_disk(
        &self,
        ufd: RawFd,
        (oppath, oname): (&OsStr, &OsStr),
        (nppath, nname): (&OsStr, &OsStr),
        src_dir: bool,
        dst_pure_upper: bool,
        old_lower: bool,
    ) -> io::Result<()> {
        let opath = join(oppath, oname);
        let npath = join(nppath, nname);
        let mut aufs_marker = false;
        match sys::lstat_opt(ufd, &npath)? {
            Some(st) if self.upper_whiteout(ufd, &npath, &st) && src_dir => {
                sys::unlinkat(ufd, &npath, 0)?
            }
            Some(st) if sys::is_dir(&st) && !dst_pure_upper => self.clear_dir(&npath)?,
            Some(_) => {}
            None => aufs_marker = whiteout::is_whiteout(ufd, nppath, nname, self.upper_aufs())?,
        }
        match (old_lower, self.layers.format) {
            (true, Format::Overlay) => {
                sys::renameat2(ufd, &opath, ufd, &npath, libc::RENAME_WHITEOUT)?
            }
            (true, Format::Aufs) => {
                sys::renameat2(ufd, &opath, ufd, &npath, 0)?;
                self.make_whiteout(oppath, oname)?;
            }
            (false, _) => sys::renameat2(ufd, &opath, ufd, &npath, 0)?,
        }
        if aufs_marker {
            sys::unlinkat(ufd, &join(nppath, &whiteout::aufs_whiteout_name(nname)), 0)?;
        }
        Ok(())
    }

    /// The node table follows a rename done on disk: the moved node(s) take their new
    /// names; a replaced node loses its name.
    fn follow_rename(
        &self,
        src_node: &Arc<Node>,
        dst_node: Option<Arc<Node>>,
        (op, oname): (u64, &OsStr),
        (np, nname): (u64, &OsStr),
        exchange: bool,
    ) {
        {
            let mut st = src_node.lock();
            let a = (op, oname.to_owned());
            st.aliases.retain(|x| *x != a);
            st.aliases.insert(0, (np, nname.to_owned()));
            self.nodes.touch(src_node);
        }
        if let Some(dn) = dst_node
            && !Arc::ptr_eq(&dn, src_node)
        {
            let mut st = dn.lock();
            let a = (np, nname.to_owned());
            st.aliases.retain(|x| *x != a);
            if exchange {
                st.aliases.insert(0, (op, oname.to_owned()));
            }
            self.nodes.touch(&dn);
            drop(st);
            self.unhash_if_gone(&dn);
        }
    }

    /// A metacopy file about to get another name (a rename, or a link with SAMEDIR false)
    /// keeps finding its data through a redirect at PATH, as overlayfs sets it: its old
    /// NAME when it stays in its dir, else the data's path from the layer roots.
    pub(super) fn keep_metacopy_data(
        &self,
        node: &Node,
        ufd: RawFd,
        path: &OsStr,
        name: &OsStr,
        samedir: bool,
    ) -> io::Result<()> {
        let x = &self.layers.xattr;
        if node.lock().lowers.is_empty() {
            return Err(enoent());
        }
        let cur = whiteout::get(ufd, path, &x.redirect)?.and_then(|v| Redirect::parse(&v));
        let keep = matches!(&cur, Some(Redirect::Absolute(_))) || (cur.is_some() && samedir);
        if keep {
            return Ok(());
        }
        let r = if samedir && cur.is_none() {
            Redirect::Relative(name.to_owned())
        } else {
            self.absolute_redirect(ufd, path)?
        };
        sys::lsetxattr(ufd, path, &x.redirect, &r.encode(), 0)
    }

    /// The absolute redirect of the upper entry at PATH, as overlayfs builds it: its
    /// merged path, except that the nearest of it and its ancestors that carries a
    /// redirect already stands for where its subtree is in the layers below (an absolute
    /// one ends the path, a relative one is that entry's name there). Lookups follow
    /// redirects layer by layer, so the path holds even when the layers below were
    /// renamed in turn.
    fn absolute_redirect(&self, ufd: RawFd, path: &OsStr) -> io::Result<Redirect> {
        // The names from the entry up, nearest first.
        let mut names: Vec<OsString> = Vec::new();
        let mut at = path;
        while !at.is_empty() {
            let (parent, name) = split(at);
            match whiteout::get(ufd, at, &self.layers.xattr.redirect)?
                .and_then(|v| Redirect::parse(&v))
            {
                Some(Redirect::Absolute(a)) => {
                    names.push(a);
                    break;
                }
                Some(Redirect::Relative(n)) => names.push(n),
                None => names.push(name.to_owned()),
            }
            at = parent;
        }
        let mut out = OsString::new();
        for (i, n) in names.iter().rev().enumerate() {
            if i > 0 {
                out.push("/");
            }
            out.push(n);
        }
        Ok(Redirect::Absolute(out))
    }

    /// A directory about to move from PATH (its name NAME) keeps its lower dirs through a
    /// redirect (relative when it stays in the same dir, else absolute); one without lower
    /// dirs is made opaque when OPAQUE says its new place needs it. A metacopy file keeps
    /// its lower data the same way, as overlayfs does.
    pub(super) fn mark_moving_dir(
        &self,
        node: &Node,
        f: &Found,
        path: &OsStr,
        name: &OsStr,
        samedir: bool,
        opaque: bool,
    ) -> io::Result<()> {
        let metacopy = f.kind == libc::S_IFREG && node.lock().metacopy;
        if f.kind != libc::S_IFDIR && !metacopy {
            return Ok(());
        }
        let ufd = self.upper()?;
        let x = &self.layers.xattr;
        if metacopy {
            self.keep_metacopy_data(node, ufd, path, name, samedir)?;
        } else if !f.lowers.is_empty() {
            let cur = whiteout::get(ufd, path, &x.redirect)?.and_then(|v| Redirect::parse(&v));
            let keep = matches!(&cur, Some(Redirect::Absolute(_))) || (cur.is_some() && samedir);
            if !keep {
                let r = if samedir && cur.is_none() {
                    Redirect::Relative(name.to_owned())
                } else {
                    self.absolute_redirect(ufd, path)?
                };
                sys::lsetxattr(ufd, path, &x.redirect, &r.encode(), 0)?;
            }
            let mut st = node.lock();
            st.redirected = true;
            self.nodes.touch(node);
        } else if opaque && !whiteout::is_opaque_dir(ufd, path, x, self.upper_aufs())? {
            self.set_opaque(ufd, path)?;
        }
        Ok(())
    }
}
