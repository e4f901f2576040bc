//! Reads through a unionctl mount return the file's bytes whatever their size and offset:
//! large reads are spliced from the file to the FUSE device (adapter `splice`); small
//! ones go through a buffer. A read-only descriptor opened before a copy-up reads the
//! copy after it on either path.
mod common;

use common::Scratch;
use common::mounts::{UnionDirs, mount_unionctl};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Not a multiple of a page: the last read of the file is short.
const LEN: usize = (9 << 20) + 1234;

/// Bytes that differ at every offset (a repeating pattern could hide a wrong offset).
fn content(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Reads up to LEN bytes at OFF, as many reads as it takes (0: the end of the file).
fn read_at(f: &std::fs::File, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("read of {len} bytes at {off}: {e}"),
        }
    }
    buf.truncate(got);
    buf
}

fn expected(data: &[u8], off: u64, len: usize) -> &[u8] {
    let start = (off as usize).min(data.len());
    &data[start..(start + len).min(data.len())]
}

/// Each (offset, size) pair read through F must give DATA's bytes there.
fn check_reads(f: &std::fs::File, data: &[u8], what: &str) {
    let sizes = [
        1,
        4095,
        4096,
        65537,
        128 << 10,
        (128 << 10) + 1,
        1 << 20,
        3 << 20,
    ];
    let mut x: u64 = 12345;
    for i in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (x >> 20) % (data.len() as u64 + (200 << 10));
        let size = sizes[i % sizes.len()];
        let got = read_at(f, off, size);
        assert!(
            got == expected(data, off, size),
            "{what}: {size} bytes at {off}: {} bytes read, not the file's",
            got.len()
        );
    }
}

#[test]
fn reads_of_every_size_and_offset_return_the_files_bytes() {
    assert!(common::is_root(), "mounts FUSE: run as root");
    let s = Scratch::new("reads-sizes");
    let lower = s.mkdir("lower");
    let data = content(LEN);
    std::fs::write(lower.join("big"), &data).unwrap();
    let dirs = UnionDirs {
        lowers: vec![lower],
        upper: Some(s.mkdir("upper")),
        work: Some(s.mkdir("work")),
    };
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("mount");
    let big = merged.join("big");
    // In sequence (the page cache's read-ahead sends 128 KiB reads), then anywhere.
    assert!(std::fs::read(&big).unwrap() == data, "a whole read differs");
    check_reads(&std::fs::File::open(&big).unwrap(), &data, "cached");
    // O_DIRECT: each read reaches the daemon at its own offset and size.
    let direct = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&big)
            .unwrap()
    };
    check_reads(&direct(), &data, "O_DIRECT");
    // Opened before a copy-up, a read-only descriptor reads the upper copy after it.
    let before = direct();
    assert!(read_at(&before, 0, 1 << 20) == data[..1 << 20]);
    let mut appended = data.clone();
    appended.extend_from_slice(b"tail");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&big)
        .unwrap()
        .write_all(b"tail")
        .unwrap();
    assert!(upper_has(&dirs, &appended), "no copy-up in the upper layer");
    check_reads(&before, &appended, "O_DIRECT, opened before the copy-up");
    drop(before);
    m.unmount().unwrap();
}

fn upper_has(dirs: &UnionDirs, data: &[u8]) -> bool {
    let upper: &Path = dirs.upper.as_ref().unwrap();
    std::fs::read(upper.join("big")).is_ok_and(|d| d == data)
}

/// The share of FILE's pages in the page cache (mincore of a mapping of it).
fn cached_share(file: &Path) -> f64 {
    let f = std::fs::File::open(file).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    use std::os::fd::AsRawFd;
    // SAFETY: a read-only shared mapping of an open file, unmapped before returning.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap {}", file.display());
        assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
        libc::munmap(p, len);
    }
    vec.iter().filter(|&&b| b & 1 == 1).count() as f64 / vec.len() as f64
}

/// Written, synced and dropped from the page cache: read next from the disk.
fn write_cold(path: &Path, data: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    f.write_all_at(data, 0).unwrap();
    f.sync_all().unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: advice on an open file.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

/// A big file read once through the mount leaves the layer's page cache (the mount's
/// holds it; adapter read-ahead drops it behind the reader); a small one stays there for
/// the next mount of the layer.
#[test]
fn a_big_file_read_once_leaves_the_layers_page_cache_a_small_one_stays() {
    assert!(common::is_root(), "mounts FUSE: run as root");
    let s = Scratch::new("reads-drop-behind");
    let lower = s.mkdir("lower");
    let big = content(96 << 20);
    write_cold(&lower.join("big"), &big);
    write_cold(&lower.join("small"), &big[..LEN]);
    let dirs = UnionDirs {
        lowers: vec![lower.clone()],
        upper: Some(s.mkdir("upper")),
        work: Some(s.mkdir("work")),
    };
    let merged = s.mkdir("merged");
    let mut m = mount_unionctl(&dirs, &merged, &[]).expect("mount");
    assert!(std::fs::read(merged.join("small")).unwrap() == big[..LEN]);
    assert!(std::fs::read(merged.join("big")).unwrap() == big);
    let (small_share, big_share) = (
        cached_share(&lower.join("small")),
        cached_share(&lower.join("big")),
    );
    assert!(
        small_share > 0.99,
        "the small file's pages went: {small_share:.2} cached"
    );
    assert!(
        big_share < 0.1,
        "the big file's pages stayed: {big_share:.2} cached"
    );
    m.unmount().unwrap();
}
