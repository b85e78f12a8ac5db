//! The last resort for drafts: when the database refuses even a draft, the
//! draft is appended to a local file and flushed to disk before the client
//! is answered, then moved into `pending_storage_saves` once the database
//! takes writes again. One JSON draft per line.

use crate::domain::draft::Draft;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

pub struct Spool {
    file: PathBuf,
    /// A file being moved into the database; left in place if that fails.
    draining: PathBuf,
    /// Appends and the hand-over to draining never interleave: an append can
    /// never land in a file that was already read.
    lock: Mutex<()>,
}

impl Spool {
    pub fn new(dir: &Path) -> Self {
        Self {
            file: dir.join("drafts.jsonl"),
            draining: dir.join("drafts.draining.jsonl"),
            lock: Mutex::new(()),
        }
    }

    /// Appends `draft` and flushes it to disk.
    pub async fn append(&self, draft: &Draft) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(draft)?;
        line.push(b'\n');
        let file = self.file.clone();
        let _guard = self.lock.lock().await;
        blocking(move || {
            let dir = file.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let is_new = !file.exists();
            let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&file)?;
            out.write_all(&line)?;
            out.sync_data()?;
            if is_new {
                // A new file is durable only once its directory entry is.
                sync_dir(dir)?;
            }
            Ok(())
        })
        .await
    }

    /// The spooled drafts to move into the database, oldest first; call
    /// [`Spool::drained`] once they are stored.
    pub async fn take(&self) -> std::io::Result<Vec<Draft>> {
        let (file, draining) = (self.file.clone(), self.draining.clone());
        let _guard = self.lock.lock().await;
        blocking(move || {
            if !draining.exists() {
                if !file.exists() {
                    return Ok(Vec::new());
                }
                std::fs::rename(&file, &draining)?;
                sync_dir(draining.parent().unwrap_or(Path::new(".")))?;
            }
            let reader = std::io::BufReader::new(std::fs::File::open(&draining)?);
            let mut drafts = Vec::new();
            for line in reader.lines() {
                let line = line?;
                // A line cut short by a crash mid-append was never acknowledged.
                match serde_json::from_str(&line) {
                    Ok(draft) => drafts.push(draft),
                    Err(error) => tracing::warn!(event = "spool_line_skipped", error = %error),
                }
            }
            Ok(drafts)
        })
        .await
    }

    pub async fn drained(&self) -> std::io::Result<()> {
        let draining = self.draining.clone();
        blocking(move || match std::fs::remove_file(&draining) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        })
        .await
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}
