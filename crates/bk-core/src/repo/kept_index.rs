//! The index the Repository keeps, so that callers need not carry one.

use super::*;

impl Repository {
    /// The index of every readable index file, without recorded damage:
    /// loaded on first use and kept while the repository's index files and
    /// damage records stay the same (checked with a listing of each), so
    /// that callers need not carry one.
    pub fn index(&self) -> Result<Arc<Index>> {
        // Index files and damage records are immutable and named by their
        // content, so their names say whether the cached index is current
        // (another process may have backed up since: a long-lived web UI).
        let index_objs = self.backend.list(layout::INDEX_DIR)?;
        let damage_objs = self.backend.list(layout::DAMAGED_DIR)?;
        let key: Vec<String> = index_objs
            .iter()
            .chain(&damage_objs)
            .map(|o| o.name.clone())
            .collect();
        let mut slot = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, i)) = &*slot
            && *k == key
        {
            return Ok(Arc::clone(i));
        }
        let (lists, _) = self.index_files_of(index_objs)?;
        let damage = self.damage_of(damage_objs)?;
        let i = Arc::new(index_without(lists, &damage));
        *slot = Some((key, Arc::clone(&i)));
        Ok(i)
    }

    pub(super) fn index_changed(&self) {
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A tree, verified and parsed, found through [`Repository::index`].
    pub fn tree(&self, id: &Id) -> Result<Tree> {
        let idx = self.index()?;
        self.read_tree(&idx, id)
    }

    /// A blob's content, verified, found through [`Repository::index`].
    pub fn blob(&self, id: &Id) -> Result<Vec<u8>> {
        let idx = self.index()?;
        self.read_blob(&idx, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::local::LocalSource;
    use crate::ops::backup::{BackupOptions, backup};

    #[test]
    fn the_kept_index_follows_another_writers_backup() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("a.txt"), "first").unwrap();
        let root = tmp.path().join("repo");
        let reader = Repository::open_or_init_local(&root).unwrap();
        let src = LocalSource::new(&data, &[]).unwrap();
        let first = backup(&reader, &src, &BackupOptions::new("ds")).unwrap();
        let kept = reader.index().unwrap();
        assert!(reader.tree(&first.tree).is_ok());

        // Another process (another Repository value) backs up new content.
        std::fs::write(data.join("b.txt"), "second, new").unwrap();
        let writer = Repository::open_local(&root).unwrap();
        let second = backup(&writer, &src, &BackupOptions::new("ds")).unwrap();
        assert!(!kept.contains(&second.tree), "the test needs a new tree");
        let now = reader.index().unwrap();
        assert!(now.contains(&second.tree), "the kept index went stale");
        assert!(reader.tree(&second.tree).is_ok());
        // Nothing changed since: the same index is handed out again.
        assert!(Arc::ptr_eq(&now, &reader.index().unwrap()));
    }
}
