//! Damage records: packs and blobs found damaged by `check --read-data`
//! or a backup, in `damaged/`, left out of every index read.

use super::*;

/// Damaged packs and blobs recorded in the repository: their copies are
/// never used again (a sound copy elsewhere, or one a later backup stores,
/// takes their place).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// Packs that are missing, short or unreadable as a whole.
    #[serde(default)]
    pub packs: Vec<Id>,
    /// Single blobs, as (pack, blob), whose stored bytes are wrong.
    #[serde(default)]
    pub blobs: Vec<(Id, Id)>,
}

impl Damage {
    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.packs.is_empty() && self.blobs.is_empty()
    }
}

/// An index of `lists` without the packs and blobs `damage` names. A blob
/// kept in several packs is found in a sound one.
pub(super) fn index_without(lists: PackLists, damage: &Damage) -> Index {
    let bad_packs: std::collections::HashSet<Id> = damage.packs.iter().copied().collect();
    let bad_blobs: std::collections::HashSet<(Id, Id)> = damage.blobs.iter().copied().collect();
    let mut idx = Index::default();
    for (pack, mut entries) in lists {
        if bad_packs.contains(&pack) {
            continue;
        }
        if !bad_blobs.is_empty() {
            entries.retain(|e| !bad_blobs.contains(&(pack, e.id)));
        }
        idx.add_pack(pack, entries);
    }
    idx
}

impl Repository {
    /// Every damage record of the repository, merged.
    pub fn damage(&self) -> Result<Damage> {
        self.damage_of(self.backend.list(layout::DAMAGED_DIR)?)
    }

    /// [`Repository::damage`] from these entries of `damaged/`.
    pub(super) fn damage_of(&self, objs: Vec<ObjectInfo>) -> Result<Damage> {
        let mut all = Damage::default();
        for obj in objs {
            let bytes = self.backend.read(&obj.name)?;
            match serde_json::from_slice::<Damage>(&bytes) {
                Ok(d) => {
                    all.packs.extend(d.packs);
                    all.blobs.extend(d.blobs);
                }
                Err(e) => self.note(format!("skipped {}: not a damage record: {e}", obj.name)),
            }
        }
        all.packs.sort();
        all.packs.dedup();
        all.blobs.sort();
        all.blobs.dedup();
        Ok(all)
    }

    /// Record damaged packs and blobs, so that no later backup deduplicates
    /// against them and no restore reads them while another copy exists.
    /// An immutable file of its own, named by its hash.
    pub fn record_damage(&self, damage: &Damage) -> Result<()> {
        self.index_changed();
        if damage.is_empty() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(damage).expect("damage serializes");
        let name = layout::damage_name(&Id::hash(&bytes));
        self.backend.write(&name, &bytes, false)
    }

    /// These packs were written anew (a backup stored their blobs again and
    /// the content-addressed name came out the same): drop what the damage
    /// records say of them. The records are merged into one new file
    /// first, then the old ones removed; a crash in between leaves the old
    /// claims, which only costs storing those blobs once more.
    ///
    /// `known` is the damage read under the same lock (by
    /// [`Repository::index_for_backup`]): when it says nothing of these
    /// packs, nothing is read or written (the common case costs no I/O).
    pub fn clear_damage_of(&self, known: &Damage, packs: &[Id]) -> Result<()> {
        self.index_changed();
        let written: std::collections::HashSet<&Id> = packs.iter().collect();
        let touches = |d: &Damage| {
            d.packs.iter().any(|p| written.contains(p))
                || d.blobs.iter().any(|(p, _)| written.contains(p))
        };
        if !touches(known) {
            return Ok(());
        }
        let files = self.backend.list(layout::DAMAGED_DIR)?;
        let all = self.damage()?;
        if !touches(&all) {
            return Ok(());
        }
        let rest = Damage {
            packs: all
                .packs
                .into_iter()
                .filter(|p| !written.contains(p))
                .collect(),
            blobs: all
                .blobs
                .into_iter()
                .filter(|(p, _)| !written.contains(p))
                .collect(),
        };
        self.record_damage(&rest)?;
        let kept = serde_json::to_vec_pretty(&rest).expect("damage serializes");
        let kept = layout::damage_name(&Id::hash(&kept));
        for obj in files {
            if obj.name != kept {
                self.backend.remove(&obj.name)?;
            }
        }
        Ok(())
    }

    /// Remove every damage record (after `bk repair index` wrote an index
    /// that leaves the damaged copies out).
    pub fn clear_damage(&self) -> Result<()> {
        self.index_changed();
        for obj in self.backend.list(layout::DAMAGED_DIR)? {
            self.backend.remove(&obj.name)?;
        }
        Ok(())
    }
}
