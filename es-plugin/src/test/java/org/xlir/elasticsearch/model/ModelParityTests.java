package org.xlir.elasticsearch.model;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.xcontent.XContentParser;
import org.elasticsearch.xcontent.XContentParserConfiguration;
import org.elasticsearch.xcontent.json.JsonXContent;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Opt-in (outside Elasticsearch): encode texts with an exported model and write the vectors, for
 * a parity check against the Python encoder.
 * {@code mvn test -Dtest=ModelParityTests -Dxlir.parity.model=DIR -Dxlir.parity.texts=texts.json
 * -Dxlir.parity.out=out.json [-Dxlir.parity.type=passage]}
 */
class ModelParityTests {

    @Test
    void writeVectors() throws Exception {
        String model = System.getProperty("xlir.parity.model");
        assumeTrue(model != null && model.isEmpty() == false, "set -Dxlir.parity.model to run");
        LogConfigurator.configureESLogging();
        Path dir = Path.of(model);
        List<String> texts = new ArrayList<>();
        try (
            InputStream in = Files.newInputStream(Path.of(System.getProperty("xlir.parity.texts")));
            XContentParser parser = JsonXContent.jsonXContent.createParser(XContentParserConfiguration.EMPTY, in)
        ) {
            for (Object o : parser.list()) {
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
            XContentBuilder b = new XContentBuilder(JsonXContent.jsonXContent, out);
            b.startObject().startArray("vectors");
            for (float[] v : result.vectors()) {
                b.startArray();
                for (float f : v) {
                    b.value(f);
                }
                b.endArray();
            }
            b.endArray().startArray("truncated");
            for (boolean t : result.truncated()) {
                b.value(t);
            }
            b.endArray().endObject();
            b.close();
        }
    }
}
