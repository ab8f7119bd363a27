package org.xlir.core;

import com.google.gson.Gson;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Opt-in (outside any engine): encode texts with an exported model and write the vectors, for
 * a parity check against the Python encoder.
 * {@code mvn test -Dtest=ModelParityTests -Dxlir.parity.model=DIR -Dxlir.parity.texts=texts.json
 * -Dxlir.parity.out=out.json [-Dxlir.parity.type=passage]}
 */
class ModelParityTests {

    @Test
    void writeVectors() throws Exception {
        String model = System.getProperty("xlir.parity.model");
        assumeTrue(model != null && model.isEmpty() == false, "set -Dxlir.parity.model to run");
        Path dir = Path.of(model);
        List<String> texts = new ArrayList<>();
        try (InputStream in = Files.newInputStream(Path.of(System.getProperty("xlir.parity.texts")))) {
            for (Object o : new Gson().fromJson(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8), List.class)) {
                texts.add((String) o);
            }
        }
        InputType type = InputType.parse(System.getProperty("xlir.parity.type", "passage"));
        ModelManifest manifest = ModelManifest.read(dir.resolve(ModelManifest.FILE));
        NativeRuntime.configure(Path.of(System.getProperty("java.io.tmpdir")));
        long t0 = System.nanoTime();
        EmbeddingResult result;
        try (XlirModel m = XlirModel.load("parity", dir, manifest, 2, 32, 1024)) {
            long t1 = System.nanoTime();
            result = m.encode(texts, type);
            long t2 = System.nanoTime();
            System.out.printf("load %.1f ms, encode %d texts %.1f ms%n", (t1 - t0) / 1e6, texts.size(), (t2 - t1) / 1e6);
        }
        try (OutputStream out = Files.newOutputStream(Path.of(System.getProperty("xlir.parity.out")))) {
            // Gson writes a float as its shortest decimal, as Elasticsearch's XContent did
            String json = new Gson().toJson(java.util.Map.of("vectors", result.vectors(), "truncated", result.truncated()));
            out.write(json.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        }
    }
}
