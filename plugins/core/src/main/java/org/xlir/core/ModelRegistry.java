package org.xlir.core;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;
import java.util.regex.Pattern;

/**
 * The one place models are found, verified and loaded: {@code <models dir>/<name>/} holding
 * model.onnx, tokenizer.json and xlir.json. Loading is lazy (first use) and cached; a failure
 * is cached too, so a bulk of documents naming a broken model fails fast. Every few seconds a
 * use re-checks the files' sizes and modification times: a model copied in, fixed or replaced
 * is picked up without a restart.
 *
 * <p>{@link #get} blocks (checksum, session creation): call it from the plugin's thread pool.
 */
public final class ModelRegistry implements Closeable {

    private static final Logger logger = LogManager.getLogger(ModelRegistry.class);
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    static final long RECHECK_NANOS = 2_000_000_000L;

    public interface Loader {
        XlirModel load(String name, Path dir, ModelManifest manifest) throws Exception;
    }

    private record Entry(Fingerprint fingerprint, XlirModel model, RuntimeException failure, long checkedAt) {}

    /** Sizes and modification times of a model's files (-1 when missing). */
    record Fingerprint(List<Long> values) {
        static Fingerprint of(Path dir) {
            List<Long> values = new ArrayList<>();
            for (String file : XlirModel.FILES) {
                try {
                    BasicFileAttributes attrs = Files.readAttributes(dir.resolve(file), BasicFileAttributes.class);
                    values.add(attrs.size());
                    values.add(attrs.lastModifiedTime().toMillis());
                } catch (IOException e) {
                    values.add(-1L);
                    values.add(-1L);
                }
            }
            return new Fingerprint(values);
        }
    }

    private final Path modelsDir;
    private final Loader loader;
    private final LongSupplier nanoTime;
    private final Map<String, Entry> entries = new ConcurrentHashMap<>();
    private final Map<String, Object> locks = new ConcurrentHashMap<>();

    public ModelRegistry(Path modelsDir, Loader loader) {
        this(modelsDir, loader, System::nanoTime);
    }

    ModelRegistry(Path modelsDir, Loader loader, LongSupplier nanoTime) {
        this.modelsDir = modelsDir;
        this.loader = loader;
        this.nanoTime = nanoTime;
    }

    public Path modelsDir() {
        return modelsDir;
    }

    /** Throws IllegalArgumentException for a name that could not be a model directory. */
    public static String validateName(String name) {
        if (name == null || NAME.matcher(name).matches() == false) {
            throw new IllegalArgumentException(
                "invalid xlir model name [" + name + "]: use letters, digits, '_', '-' and '.' (not first)"
            );
        }
        return name;
    }

    /** The loaded model, loading it first if needed; a model error otherwise. Blocking. */
    public XlirModel get(String name) {
        validateName(name);
        Entry entry = entries.get(name);
        long now = nanoTime.getAsLong();
        if (entry != null && now - entry.checkedAt() < RECHECK_NANOS) {
            return unwrap(entry);
        }
        synchronized (locks.computeIfAbsent(name, k -> new Object())) {
            entry = entries.get(name);
            now = nanoTime.getAsLong();
            if (entry != null && now - entry.checkedAt() < RECHECK_NANOS) {
                return unwrap(entry);
            }
            Path dir = modelsDir.resolve(name);
            Fingerprint fingerprint = Fingerprint.of(dir);
            if (entry != null && entry.fingerprint().equals(fingerprint)) {
                entry = new Entry(fingerprint, entry.model(), entry.failure(), now);
                entries.put(name, entry);
                return unwrap(entry);
            }
            Entry fresh;
            try {
                fresh = new Entry(fingerprint, loadChecked(name, dir), null, now);
                logger.info("loaded xlir model [{}] from [{}]", name, dir);
            } catch (RuntimeException e) {
                logger.warn("cannot load xlir model [{}]: {}", name, e.getMessage());
                fresh = new Entry(fingerprint, null, e, now);
            } catch (Exception e) {
                logger.warn("cannot load xlir model [{}]: {}", name, e.getMessage());
                fresh = new Entry(fingerprint, null, new ModelException(name, e.getMessage(), e), now);
            }
            entries.put(name, fresh);
            if (entry != null && entry.model() != null) {
                retire(entry.model());
            }
            return unwrap(fresh);
        }
    }

    /** Loaded model names (no loading). */
    public boolean isLoaded(String name) {
        Entry entry = entries.get(name);
        return entry != null && entry.model() != null;
    }

    private static XlirModel unwrap(Entry entry) {
        if (entry.failure() != null) {
            throw entry.failure();
        }
        return entry.model();
    }

    /** A replaced model is closed once its running encodes finish; later ones retry (see {@link #encode}). */
    private void retire(XlirModel old) {
        old.close();
    }

    /** Runs {@code work} on the named model; once more on the new one if it was replaced meanwhile. */
    public <T> T encode(String name, ModelWork<T> work) throws Exception {
        try {
            return work.apply(get(name));
        } catch (XlirModel.ClosedException e) {
            return work.apply(get(name));
        }
    }

    @FunctionalInterface
    public interface ModelWork<T> {
        T apply(XlirModel model) throws Exception;
    }

    private XlirModel loadChecked(String name, Path dir) throws Exception {
        if (Files.isDirectory(dir) == false) {
            throw new ModelNotFoundException(
                "xlir model [" + name + "] is not installed: no directory [" + dir + "] (installed: " + installed() + ")"
            );
        }
        for (String file : XlirModel.FILES) {
            if (Files.isRegularFile(dir.resolve(file)) == false) {
                throw new ModelException(name, "file [" + file + "] is missing from [" + dir + "] (reinstall the model)");
            }
        }
        ModelManifest manifest;
        try {
            manifest = ModelManifest.read(dir.resolve(ModelManifest.FILE));
        } catch (IOException | RuntimeException e) {
            throw new ModelException(name, "file [" + ModelManifest.FILE + "] in [" + dir + "] is not a valid manifest: " + e.getMessage(), e);
        }
        String actual = sha256(dir.resolve(XlirModel.MODEL_FILE));
        if (actual.equals(manifest.sha256()) == false) {
            throw new ModelException(
                name,
                "file ["
                    + XlirModel.MODEL_FILE
                    + "] does not match its manifest ["
                    + ModelManifest.FILE
                    + "]: sha256 is "
                    + actual
                    + ", the manifest says "
                    + manifest.sha256()
                    + " (corrupt or partly copied: reinstall the model)"
            );
        }
        return loader.load(name, dir, manifest);
    }

    /** Names of the directories under the models directory (sorted). */
    public List<String> installed() {
        List<String> names = new ArrayList<>();
        if (Files.isDirectory(modelsDir) == false) {
            return names;
        }
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(modelsDir)) {
            for (Path p : stream) {
                String n = p.getFileName().toString();
                if (Files.isDirectory(p) && NAME.matcher(n).matches()) {
                    names.add(n);
                }
            }
        } catch (IOException e) {
            logger.warn("cannot list [{}]: {}", modelsDir, e.getMessage());
        }
        names.sort(null);
        return names;
    }

    /** The manifest of an installed model, read from disk (no loading, no checksum). */
    public ModelManifest manifest(String name) {
        validateName(name);
        Path dir = modelsDir.resolve(name);
        Path file = dir.resolve(ModelManifest.FILE);
        if (Files.isDirectory(dir) == false) {
            throw new ModelNotFoundException(
                "xlir model [" + name + "] is not installed: no directory [" + dir + "] (installed: " + installed() + ")"
            );
        }
        try {
            return ModelManifest.read(file);
        } catch (NoSuchFileException e) {
            throw new ModelException(name, "file [" + ModelManifest.FILE + "] is missing from [" + dir + "] (reinstall the model)");
        } catch (IOException | RuntimeException e) {
            throw new ModelException(name, "file [" + ModelManifest.FILE + "] in [" + dir + "] is not a valid manifest: " + e.getMessage(), e);
        }
    }

    public static String sha256(Path file) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
        byte[] buf = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                digest.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    @Override
    public void close() {
        for (Entry e : entries.values()) {
            if (e.model() != null) {
                e.model().close();
            }
        }
        entries.clear();
    }
}
