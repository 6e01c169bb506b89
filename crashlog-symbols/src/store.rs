//! The symbol store: indexed objects, image matching, and the per-run parse cache.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::SymbolError;
use crate::frame::Symbolication;
use crate::id::{Arch, ImageId};
use crate::image::{Address, FrameKind, ImageRef};
use crate::index::{self, ObjectInfo};
use crate::loaded::LoadedObject;
use crate::slide;

type Slot = OnceLock<Result<Arc<LoadedObject>, SymbolError>>;

/// Debug files and binaries indexed by UUID/build-id and name, with a parse cache.
///
/// Build it once per run from the `--symbols` paths, then symbolicate any number of
/// frames through `&self` (it is `Sync`: threads may share it). Each object is parsed at
/// most once, on first use; a failure to parse is cached too, so a corrupt or stripped file
/// costs one attempt and then returns the same error for every frame.
#[derive(Debug, Default)]
pub struct SymbolStore {
    objects: Vec<ObjectInfo>,
    loaded: Vec<Slot>,
    seen: HashSet<(PathBuf, Option<(u64, u64)>)>,
    by_id: HashMap<ImageId, Vec<usize>>,
    by_name: HashMap<String, Vec<usize>>,
    warnings: Vec<SymbolError>,
    loads: AtomicUsize,
}

impl SymbolStore {
    /// An empty store.
    pub fn new() -> Self {
        SymbolStore::default()
    }

    /// A store indexing every path (files or directories, as given to `--symbols`).
    /// Fails on the first path that does not exist or is a file that is not an object;
    /// problems with files found inside directories become [`SymbolStore::warnings`].
    pub fn from_paths<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, SymbolError> {
        let mut store = SymbolStore::new();
        for path in paths {
            store.add_path(path.as_ref())?;
        }
        Ok(store)
    }

    /// Index one more file or directory tree; returns how many objects (slices) were added.
    ///
    /// Directories are walked recursively (symlinked files are followed, symlinked
    /// directories are not), so a `.dSYM` bundle, a folder of them, or a
    /// `/usr/lib/debug`-style tree with `.build-id/xx/rest.debug` entries all work.
    pub fn add_path(&mut self, path: &Path) -> Result<usize, SymbolError> {
        let scan = index::scan(path)?;
        self.warnings.extend(scan.warnings);
        let mut added = 0;
        for info in scan.objects {
            let canonical = std::fs::canonicalize(&info.path).unwrap_or_else(|_| info.path.clone());
            if !self.seen.insert((canonical, info.slice)) {
                continue;
            }
            let idx = self.objects.len();
            if let Some(id) = &info.id {
                self.by_id.entry(id.clone()).or_default().push(idx);
            }
            self.by_name.entry(info.name.clone()).or_default().push(idx);
            if let Some(stem) = info.name.strip_suffix(".debug") {
                self.by_name.entry(stem.to_owned()).or_default().push(idx);
            }
            self.objects.push(info);
            self.loaded.push(OnceLock::new());
            added += 1;
        }
        Ok(added)
    }

    /// Every indexed object (one entry per fat slice).
    pub fn objects(&self) -> &[ObjectInfo] {
        &self.objects
    }

    /// Files inside indexed directories that looked like objects but could not be read.
    pub fn warnings(&self) -> &[SymbolError] {
        &self.warnings
    }

    /// How many times an object file has been parsed so far (successfully or not). With
    /// the cache this is at most the number of distinct objects used.
    pub fn objects_parsed(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    /// Find and load (or take from the cache) the object for `image`. Resolve each image of
    /// a report once and reuse the handle for all of its frames.
    ///
    /// Matching rules, in order:
    /// 1. the report gives a (non-nil) UUID/build-id: only objects with that id match,
    ///    whatever their name; among them DWARF-bearing ones (a `.dSYM`, a `.debug` file)
    ///    win over a plain binary. If none has the id, nothing is used: a same-named file
    ///    with another UUID gives [`SymbolError::UuidMismatch`], a same-named file without
    ///    the report's arch gives [`SymbolError::MissingSlice`].
    /// 2. no UUID: objects whose file name equals the image name (a `.debug` suffix is
    ///    ignored), restricted to the report's arch when it gives one
    ///    ([`SymbolError::MissingSlice`] if no slice has it). They must all be one build
    ///    (same id), else [`SymbolError::Ambiguous`].
    /// 3. neither UUID nor name: [`SymbolError::ImageNotFound`] (only [`SymbolStore::atos`]
    ///    accepts such an anonymous image; see there).
    pub fn image(&self, image: &ImageRef) -> Result<ImageHandle<'_>, SymbolError> {
        self.image_inner(image, false)
    }

    fn image_inner(
        &self,
        image: &ImageRef,
        allow_anonymous: bool,
    ) -> Result<ImageHandle<'_>, SymbolError> {
        let idx = self.resolve(image, allow_anonymous)?;
        let object = self.load(idx)?;
        let info = self
            .objects
            .get(idx)
            .ok_or_else(|| SymbolError::ImageNotFound {
                image: image.describe(),
            })?;
        Ok(ImageHandle {
            info,
            object,
            load_address: image.load_address,
        })
    }

    /// Symbolicate one frame: [`SymbolStore::image`] then [`ImageHandle::symbolicate`].
    /// On error the caller keeps its frame as it was.
    pub fn symbolicate(
        &self,
        image: &ImageRef,
        address: Address,
        kind: FrameKind,
    ) -> Result<Symbolication, SymbolError> {
        self.image(image)?.symbolicate(address, kind)
    }

    /// `atos`: symbolicate raw addresses in one image. With `image.load_address` the
    /// addresses are runtime addresses (`atos -l`); without it they are addresses in the
    /// binary's own address space. Addresses are looked up exactly (no return-address
    /// adjustment), as `atos` does. One result per address, in order.
    ///
    /// Unlike [`SymbolStore::image`], an image with neither UUID nor name is accepted here
    /// (`atos -o BINARY`): every indexed object is a candidate, narrowed by `image.arch`,
    /// and they must all be one build, else [`SymbolError::Ambiguous`].
    pub fn atos(
        &self,
        image: &ImageRef,
        addresses: &[u64],
    ) -> Vec<Result<Symbolication, SymbolError>> {
        let handle = match self.image_inner(image, true) {
            Ok(h) => h,
            Err(e) => return addresses.iter().map(|_| Err(e.clone())).collect(),
        };
        addresses
            .iter()
            .map(|&a| {
                let address = if image.load_address.is_some() {
                    Address::Absolute(a)
                } else {
                    Address::Unslid(a)
                };
                handle.symbolicate(address, FrameKind::Pc)
            })
            .collect()
    }

    fn load(&self, idx: usize) -> Result<Arc<LoadedObject>, SymbolError> {
        let (Some(slot), Some(info)) = (self.loaded.get(idx), self.objects.get(idx)) else {
            return Err(SymbolError::ImageNotFound {
                image: format!("#{idx}"),
            });
        };
        slot.get_or_init(|| {
            self.loads.fetch_add(1, Ordering::Relaxed);
            LoadedObject::load(info).map(Arc::new)
        })
        .clone()
    }

    fn info(&self, idx: usize) -> Option<&ObjectInfo> {
        self.objects.get(idx)
    }

    fn resolve(&self, image: &ImageRef, allow_anonymous: bool) -> Result<usize, SymbolError> {
        let not_found = || SymbolError::ImageNotFound {
            image: image.describe(),
        };
        let name = image.file_name();
        if let Some(id) = image.usable_uuid() {
            if let Some(cands) = self.by_id.get(id).filter(|c| !c.is_empty()) {
                return Ok(self.best(cands));
            }
            let Some(name) = name else {
                return Err(not_found());
            };
            let named = self.by_name.get(name).cloned().unwrap_or_default();
            let first = named
                .first()
                .and_then(|&i| self.info(i))
                .ok_or_else(not_found)?;
            let same_arch: Vec<usize> = match &image.arch {
                Some(arch) => named
                    .iter()
                    .copied()
                    .filter(|&i| self.info(i).is_some_and(|o| &o.arch == arch))
                    .collect(),
                None => named.clone(),
            };
            let Some(other) = same_arch.first().and_then(|&i| self.info(i)) else {
                return Err(self.missing_slice(name, image.arch.clone(), &named, first));
            };
            return Err(SymbolError::UuidMismatch {
                path: other.path.clone(),
                name: name.to_owned(),
                expected: id.clone(),
                found: other
                    .id
                    .as_ref()
                    .map_or_else(|| "(none)".to_owned(), ImageId::to_string),
            });
        }

        let cands: Vec<usize> = match name {
            Some(n) => self.by_name.get(n).cloned().unwrap_or_default(),
            None if allow_anonymous => (0..self.objects.len()).collect(),
            None => return Err(not_found()),
        };
        let first = cands
            .first()
            .and_then(|&i| self.info(i))
            .ok_or_else(not_found)?;
        let cands: Vec<usize> = match &image.arch {
            Some(arch) => cands
                .iter()
                .copied()
                .filter(|&i| self.info(i).is_some_and(|o| &o.arch == arch))
                .collect(),
            None => cands,
        };
        if cands.is_empty() {
            let all: Vec<usize> = match name {
                Some(n) => self.by_name.get(n).cloned().unwrap_or_default(),
                None => (0..self.objects.len()).collect(),
            };
            return Err(self.missing_slice(
                name.unwrap_or("(any)"),
                image.arch.clone(),
                &all,
                first,
            ));
        }
        // All candidates must be one build: the same id (a binary and its dSYM), or a
        // single object without an id. A `.gnu_debuglink` target counts as part of the
        // build of the binary that names it.
        let linked: HashSet<&str> = cands
            .iter()
            .filter_map(|&i| self.info(i).and_then(|o| o.debuglink.as_deref()))
            .collect();
        if cands.len() == 1 {
            return Ok(self.best(&cands));
        }
        let mut builds: HashSet<String> = HashSet::new();
        for &i in &cands {
            if let Some(o) = self.info(i) {
                if linked.contains(o.name.as_str()) && o.debuglink.is_none() {
                    continue;
                }
                builds.insert(match &o.id {
                    Some(id) => format!("{id}/{}", o.arch),
                    None => format!("{}#{:?}", o.path.display(), o.slice),
                });
            }
        }
        if builds.len() > 1 {
            return Err(SymbolError::Ambiguous {
                path: first.path.clone(),
                name: name.unwrap_or("(any)").to_owned(),
                count: cands.len(),
            });
        }
        Ok(self.best(&cands))
    }

    fn missing_slice(
        &self,
        name: &str,
        wanted: Option<Arch>,
        named: &[usize],
        first: &ObjectInfo,
    ) -> SymbolError {
        let mut available: Vec<Arch> = named
            .iter()
            .filter_map(|&i| self.info(i).map(|o| o.arch.clone()))
            .collect();
        available.sort();
        available.dedup();
        SymbolError::MissingSlice {
            path: first.path.clone(),
            name: name.to_owned(),
            wanted: wanted.unwrap_or(Arch::Other("(unspecified)".to_owned())),
            available,
        }
    }

    /// Among objects of one build, prefer one with DWARF; for an ELF binary without DWARF
    /// but with a `.gnu_debuglink`, the linked file if it is indexed and of the same build.
    fn best(&self, cands: &[usize]) -> usize {
        let first = cands.first().copied().unwrap_or(0);
        if let Some(&i) = cands
            .iter()
            .find(|&&i| self.info(i).is_some_and(|o| o.has_dwarf))
        {
            return i;
        }
        for &i in cands {
            let Some(o) = self.info(i) else { continue };
            let Some(link) = &o.debuglink else { continue };
            let linked = self.by_name.get(link).and_then(|ls| {
                ls.iter().copied().find(|&l| {
                    self.info(l).is_some_and(|d| {
                        d.has_dwarf
                            && d.arch == o.arch
                            && (d.id.is_none() || o.id.is_none() || d.id == o.id)
                    })
                })
            });
            if let Some(l) = linked {
                return l;
            }
        }
        first
    }
}

/// One resolved and loaded image of a report, ready for frame lookups.
#[derive(Debug, Clone)]
pub struct ImageHandle<'s> {
    info: &'s ObjectInfo,
    object: Arc<LoadedObject>,
    load_address: Option<u64>,
}

impl ImageHandle<'_> {
    /// The object that answers for this image.
    pub fn object(&self) -> &ObjectInfo {
        self.info
    }

    /// The image's vm address in the file (`__TEXT` vmaddr; ELF lowest `PT_LOAD`).
    pub fn image_vmaddr(&self) -> u64 {
        self.object.image_vmaddr
    }

    /// Symbolicate one address of this image. Errors leave the caller's frame unchanged.
    pub fn symbolicate(
        &self,
        address: Address,
        kind: FrameKind,
    ) -> Result<Symbolication, SymbolError> {
        let vm = self.object.image_vmaddr;
        let (svma, image_offset) = match address {
            Address::Absolute(a) => {
                let load = self.load_address.ok_or(SymbolError::BadAddress {
                    address: a,
                    reason: "the image has no load address",
                })?;
                let off = a.checked_sub(load).ok_or(SymbolError::BadAddress {
                    address: a,
                    reason: "it is below the image's load address",
                })?;
                let svma =
                    slide::svma_from_absolute(a, load, vm).ok_or(SymbolError::BadAddress {
                        address: a,
                        reason: "image vm address + offset overflows",
                    })?;
                (svma, off)
            }
            Address::ImageOffset(off) => {
                let svma = slide::svma_from_offset(off, vm).ok_or(SymbolError::BadAddress {
                    address: off,
                    reason: "image vm address + offset overflows",
                })?;
                (svma, off)
            }
            Address::Unslid(svma) => {
                let off = svma.checked_sub(vm).ok_or(SymbolError::BadAddress {
                    address: svma,
                    reason: "it is below the image's vm address",
                })?;
                (svma, off)
            }
        };
        let probe = match kind {
            FrameKind::Pc => svma,
            FrameKind::ReturnAddress => svma.saturating_sub(1),
        };
        let found = self.object.lookup(svma, probe)?;
        Ok(Symbolication {
            frames: found.frames,
            source: found.source,
            object_path: self.object.path.clone(),
            svma,
            image_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_handles_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<SymbolStore>();
        shared::<ImageHandle<'static>>();
        shared::<SymbolError>();
    }
}
