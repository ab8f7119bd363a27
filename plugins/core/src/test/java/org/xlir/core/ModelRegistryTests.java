package org.xlir.core;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Finding and verifying models; the loader itself is a stub (no native code here). */
class ModelRegistryTests {

    @TempDir
    Path models;

    private Path install(String name, byte[] onnx, String sha) throws Exception {
        Path dir = Files.createDirectories(models.resolve(name));
        Files.write(dir.resolve("model.onnx"), onnx);
        Files.writeString(dir.resolve("tokenizer.json"), "{}");
        Files.writeString(
            dir.resolve("xlir.json"),
            "{\"source_model\": \"t\", \"dim\": 4, \"sha256\": \"" + sha + "\"}",
            StandardCharsets.UTF_8
        );
        return dir;
    }

    @Test
    void unknownModelIsNotFoundAndListsTheInstalledOnes() throws Exception {
        install("default", new byte[] { 1 }, "x");
        ModelRegistry registry = new ModelRegistry(models, (n, d, m) -> { throw new AssertionError(); });
        ModelNotFoundException e = assertThrows(ModelNotFoundException.class, () -> registry.get("nope"));
        assertTrue(e.getMessage().contains("[nope] is not installed") && e.getMessage().contains("[default]"), e.getMessage());
    }

    @Test
    void checksumMismatchNamesModelAndFile() throws Exception {
        install("default", new byte[] { 1, 2, 3 }, "0".repeat(64));
        ModelRegistry registry = new ModelRegistry(models, (n, d, m) -> { throw new AssertionError(); });
        ModelException e = assertThrows(ModelException.class, () -> registry.get("default"));
        assertTrue(e.getMessage().contains("xlir model [default]") && e.getMessage().contains("[model.onnx]"), e.getMessage());
    }

    @Test
    void missingFileIsNamed() throws Exception {
        Path dir = install("default", new byte[] { 1 }, "x");
        Files.delete(dir.resolve("tokenizer.json"));
        ModelRegistry registry = new ModelRegistry(models, (n, d, m) -> { throw new AssertionError(); });
        ModelException e = assertThrows(ModelException.class, () -> registry.get("default"));
        assertTrue(e.getMessage().contains("[tokenizer.json] is missing"), e.getMessage());
    }

    @Test
    void aFixedModelIsPickedUpAfterTheRecheckInterval() throws Exception {
        byte[] onnx = { 9, 9 };
        Path dir = install("default", onnx, "0".repeat(64));
        AtomicLong clock = new AtomicLong();
        AtomicLong loads = new AtomicLong();
        ModelRegistry registry = new ModelRegistry(models, (n, d, m) -> {
            loads.incrementAndGet();
            return null;
        }, clock::get);
        assertThrows(ModelException.class, () -> registry.get("default"));
        String sha = ModelRegistry.sha256(dir.resolve("model.onnx"));
        Files.writeString(dir.resolve("xlir.json"), "{\"source_model\": \"t\", \"dim\": 4, \"sha256\": \"" + sha + "\", \"opset\": 1}");
        assertThrows(ModelException.class, () -> registry.get("default")); // cached until the recheck
        clock.addAndGet(ModelRegistry.RECHECK_NANOS + 1);
        registry.get("default");
        assertTrue(loads.get() == 1);
    }
}
