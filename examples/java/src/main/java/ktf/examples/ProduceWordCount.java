package ktf.examples;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.Future;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Produces N {@code ktf.examples.WordCountTask} tasks the way any non-Python service
 * must: an Avro body (plain schemaless, or single-object with {@code -wire single-object})
 * plus the framework's contract headers (docs/producing.md).
 *
 * <p>Prints one line per task: {@code <task id>} so callers can match replies.
 *
 * <pre>
 * java -jar target/ktf-java-producer.jar -bootstrap 127.0.0.1:9092 -topic tasks.word-count \
 *      -count 10 [-schema ../../schemas/examples/WordCountTask.avsc] [-reply-to TOPIC]
 *      [-wire avro|single-object] [-deadline-ms 60000]
 * </pre>
 */
public final class ProduceWordCount {

    private static final SecureRandom RANDOM = new SecureRandom();

    private ProduceWordCount() {}

    public static void main(String[] argv) throws Exception {
        String bootstrap = "127.0.0.1:9092";
        String topic = "tasks.word-count";
        String schemaPath = "../../schemas/examples/WordCountTask.avsc";
        String replyTo = null;
        String wire = "avro";
        long deadlineMs = 0;
        int count = 10;
        for (int i = 0; i < argv.length; i += 2) {
            if (i + 1 >= argv.length) {
                usage("missing value for " + argv[i]);
            }
            String v = argv[i + 1];
            switch (argv[i]) {
                case "-bootstrap" -> bootstrap = v;
                case "-topic" -> topic = v;
                case "-count" -> count = Integer.parseInt(v);
                case "-schema" -> schemaPath = v;
                case "-reply-to" -> replyTo = v;
                case "-wire" -> wire = v;
                case "-deadline-ms" -> deadlineMs = Long.parseLong(v);
                default -> usage("unknown option " + argv[i]);
            }
        }
        if (!wire.equals("avro") && !wire.equals("single-object")) {
            usage("-wire must be avro or single-object");
        }
        Schema schema = new Schema.Parser().parse(new File(schemaPath));

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

        BinaryMessageEncoder<GenericRecord> singleObject =
                new BinaryMessageEncoder<>(GenericData.get(), schema);
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < count; i++) {
                GenericRecord task = new GenericData.Record(schema);
                task.put("text", "java task " + i + " counts the words of task " + i);
                task.put("lowercase", true);
                byte[] value = wire.equals("avro") ? plainAvro(schema, task) : toBytes(singleObject.encode(task));

                String taskId = UUID.randomUUID().toString().replace("-", "");
                RecordHeaders headers = new RecordHeaders();
                header(headers, "ktf-task-id", taskId);
                header(headers, "ktf-attempt", "1");
                header(headers, "traceparent", newTraceparent());
                if (deadlineMs > 0) {
                    header(headers, "ktf-deadline", Long.toString(System.currentTimeMillis() + deadlineMs));
                }
                if (replyTo != null) {
                    header(headers, "ktf-reply-to", replyTo);
                    header(headers, "ktf-correlation-id", taskId);
                }
                byte[] key = ("java-" + i).getBytes(StandardCharsets.UTF_8);
                sent.add(producer.send(new ProducerRecord<>(topic, null, key, value, headers)));
                System.out.println(taskId);
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                f.get(); // surfaces a failed delivery as an exception and a non-zero exit
            }
        }
        System.out.flush();
    }

    /** Plain schemaless Avro: just the binary body, no header (wire format "avro"). */
    static byte[] plainAvro(Schema schema, GenericRecord record) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder encoder = EncoderFactory.get().directBinaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(record, encoder);
        encoder.flush();
        return out.toByteArray();
    }

    private static byte[] toBytes(ByteBuffer buffer) {
        byte[] out = new byte[buffer.remaining()];
        buffer.get(out);
        return out;
    }

    private static void header(RecordHeaders headers, String name, String value) {
        headers.add(name, value.getBytes(StandardCharsets.UTF_8));
    }

    /** A new W3C trace: version 00, random trace and span ids, sampled. */
    private static String newTraceparent() {
        byte[] trace = new byte[16];
        byte[] span = new byte[8];
        RANDOM.nextBytes(trace);
        RANDOM.nextBytes(span);
        HexFormat hex = HexFormat.of();
        return "00-" + hex.formatHex(trace) + "-" + hex.formatHex(span) + "-01";
    }

    private static void usage(String problem) {
        System.err.println("ProduceWordCount: " + problem);
        System.err.println("usage: -bootstrap HOST:PORT -topic TOPIC -count N [-schema FILE.avsc] "
                + "[-reply-to TOPIC] [-wire avro|single-object] [-deadline-ms MS]");
        System.exit(2);
    }
}
