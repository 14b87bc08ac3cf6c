//! Is a path a store directory? Checked before `wb inspect`, `wb verify`
//! or `wb compact` touch it, so that a typo is refused, naming the path,
//! instead of becoming a new, empty store (`WriteBehind::open` creates the
//! directory it is given).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use writebehind::inspect as scan;
use writebehind::Error;

/// Why a path is not a store directory the tool can use.
#[derive(Debug)]
pub enum Problem {
    /// Nothing is there.
    Missing(PathBuf),
    /// A file (or anything else that is not a directory) is there.
    NotADirectory(PathBuf),
    /// A directory with no `LOCK` file and no `NNNNNN.wb` segment.
    NotAStore(PathBuf),
    /// The path (the directory, or a file in it) could not be read.
    Unreadable(PathBuf, io::Error),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing(p) => write!(f, "{}: no such directory", p.display()),
            Problem::NotADirectory(p) => {
                write!(f, "{}: it is a file, not a directory", p.display())
            }
            Problem::NotAStore(p) => write!(
                f,
                "{}: not a store (no LOCK file and no NNNNNN.wb segment in it)",
                p.display()
            ),
            Problem::Unreadable(p, e) => write!(f, "{}: {}", p.display(), describe(e)),
        }
    }
}

/// An I/O error in a few plain words (without the "(os error N)").
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// Ok if `dir` is a directory holding a store (a `LOCK` file or at least
/// one segment file). Reads only; creates nothing.
pub fn check(dir: &Path) -> Result<(), Problem> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Problem::Missing(dir.into())),
        Err(e) => return Err(Problem::Unreadable(dir.into(), e)),
    };
    if !meta.is_dir() {
        return Err(Problem::NotADirectory(dir.into()));
    }
    if dir.join("LOCK").is_file() {
        return Ok(());
    }
    match scan::list_segments(dir) {
        Ok(ids) if ids.is_empty() => Err(Problem::NotAStore(dir.into())),
        Ok(_) => Ok(()),
        // A `.wb` file that is not a segment: a store (or something meant
        // to be one) that the scan or the open will refuse, saying why.
        Err(Error::Format { .. }) => Ok(()),
        Err(Error::Io(e)) => Err(Problem::Unreadable(dir.into(), e)),
        Err(e) => Err(Problem::Unreadable(dir.into(), io::Error::other(e))),
    }
}

/// The first path of the store that cannot be read, and why: the directory
/// itself, or a segment file that does not open. `None` if all open now.
pub fn first_unreadable(dir: &Path) -> Option<(PathBuf, io::Error)> {
    if let Err(e) = std::fs::read_dir(dir) {
        return Some((dir.into(), e));
    }
    let ids = scan::list_segments(dir).ok()?;
    ids.into_iter().find_map(|id| {
        let path = id.path(dir);
        std::fs::File::open(&path).err().map(|e| (path, e))
    })
}
