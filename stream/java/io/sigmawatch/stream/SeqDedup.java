package io.sigmawatch.stream;

import java.time.Duration;
import java.util.Arrays;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.util.Collector;

/**
 * Exactly-once counting of edge frames and track events: drops every copy of a (device, seq) already seen, however
 * late it arrives (an agent's resend after a lost confirmation, a bridge's redelivery, an outbox replay). Frames
 * ({@code detections}) and events ({@code events}) have separate per-device counters, so separate sets.
 *
 * <p>Per device the state is the set of sequence numbers seen, as sorted disjoint intervals: a device's
 * numbers are consecutive, so the set is one interval plus the gaps still open (messages in flight or lost),
 * a few longs whatever the device's history. A device silent for {@code ttl} (processing time) is forgotten.
 * Landing rows that are not frames (metrics, status, trailers, invalid lines) pass through unchanged. It runs on the
 * rows as the landing source decodes them, before the job's event time and watermark are assigned.
 */
public final class SeqDedup extends KeyedProcessFunction<String, RowData, RowData> {
    private static final long serialVersionUID = 1L;

    private static final StringData FRAME = StringData.fromString("detections");
    private static final StringData EVENT = StringData.fromString("events");

    private final int deviceField;
    private final int kindField;
    private final int seqField;
    private final long ttlMillis;
    private transient ValueState<long[]> seen;
    private transient ValueState<long[]> seenEvents;
    private transient Counter duplicates;

    public SeqDedup(int deviceField, int kindField, int seqField, long ttlMillis) {
        this.deviceField = deviceField;
        this.kindField = kindField;
        this.seqField = seqField;
        this.ttlMillis = ttlMillis;
    }

    /** Keys rows by their device (an empty key for rows without one: trailers, unparseable lines). */
    public static final class DeviceKey implements KeySelector<RowData, String> {
        private static final long serialVersionUID = 1L;
        private final int field;

        public DeviceKey(int field) {
            this.field = field;
        }

        @Override
        public String getKey(RowData row) {
            return row.isNullAt(field) ? "" : row.getString(field).toString();
        }
    }

    /**
     * The job's entry point (called from Python through Py4J): landing rows keyed by device, deduplicated.
     *
     * <p>With one source subtask (the default parallelism 1) that subtask owns every key group, so the rows are
     * already "partitioned by device": the stream is reinterpreted as keyed and this operator is chained to the
     * source, instead of a keyBy exchange that would serialize and deserialize every landing row between them
     * (measured: about a fifth of the SQL path's CPU). With more source subtasks a device's files may be read by
     * any of them, so the rows go through a keyBy. The state is the same keyed state either way (same uid).
     */
    public static DataStream<RowData> apply(DataStream<RowData> in, int deviceField, int kindField, int seqField,
                                            long ttlMillis) {
        boolean single = in.getParallelism() == 1;
        KeyedStream<RowData, String> keyed = single
                ? DataStreamUtils.reinterpretAsKeyedStream(in, new DeviceKey(deviceField), Types.STRING)
                : in.keyBy(new DeviceKey(deviceField));
        SingleOutputStreamOperator<RowData> out = keyed
                .process(new SeqDedup(deviceField, kindField, seqField, ttlMillis), in.getType())
                .uid("seq-dedup")
                .name("dedup (device, seq)");
        return single ? out.setParallelism(1) : out;
    }

    @Override
    public void open(OpenContext openContext) {
        seen = getRuntimeContext().getState(intervals("seen-seq-intervals"));
        seenEvents = getRuntimeContext().getState(intervals("seen-event-seq-intervals"));
        duplicates = getRuntimeContext().getMetricGroup().counter("duplicateFrames");
    }

    private ValueStateDescriptor<long[]> intervals(String name) {
        ValueStateDescriptor<long[]> descriptor = new ValueStateDescriptor<>(name, long[].class);
        descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(ttlMillis))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build());
        return descriptor;
    }

    @Override
    public void processElement(RowData row, Context ctx, Collector<RowData> out) throws Exception {
        if (row.isNullAt(deviceField) || row.isNullAt(seqField) || row.isNullAt(kindField)) {
            out.collect(row);          // not a frame (a beat, a trailer, a reject): nothing to deduplicate
            return;
        }
        StringData kind = row.getString(kindField);
        // frames and track events: each kind has its own per-device sequence counter, so its own intervals
        ValueState<long[]> state = FRAME.equals(kind) ? seen : EVENT.equals(kind) ? seenEvents : null;
        if (state == null) {
            out.collect(row);
            return;
        }
        long seq = row.getLong(seqField);
        long[] intervals = state.value();
        if (contains(intervals, seq)) {
            duplicates.inc();
            return;
        }
        state.update(insert(intervals, seq));
        out.collect(row);
    }

    /** True if {@code s} lies in one of the sorted disjoint closed intervals {@code [a0, b0, a1, b1, ...]}. */
    static boolean contains(long[] iv, long s) {
        if (iv == null) {
            return false;
        }
        int lo = 0;
        int hi = iv.length / 2 - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (s < iv[2 * mid]) {
                hi = mid - 1;
            } else if (s > iv[2 * mid + 1]) {
                lo = mid + 1;
            } else {
                return true;
            }
        }
        return false;
    }

    /** The intervals with {@code s} added (not already contained), merging neighbours it touches. */
    static long[] insert(long[] iv, long s) {
        if (iv == null || iv.length == 0) {
            return new long[] {s, s};
        }
        int n = iv.length / 2;
        int i = 0;                       // first interval starting after s
        while (i < n && iv[2 * i] <= s) {
            i++;
        }
        boolean joinsLeft = i > 0 && iv[2 * (i - 1) + 1] == s - 1;
        boolean joinsRight = i < n && iv[2 * i] == s + 1;
        if (joinsLeft && joinsRight) {   // s closes the gap between two intervals
            long[] out = new long[iv.length - 2];
            System.arraycopy(iv, 0, out, 0, 2 * (i - 1) + 1);
            System.arraycopy(iv, 2 * i + 1, out, 2 * (i - 1) + 1, iv.length - (2 * i + 1));
            return out;
        }
        long[] out;
        if (joinsLeft) {
            out = Arrays.copyOf(iv, iv.length);
            out[2 * (i - 1) + 1] = s;
        } else if (joinsRight) {
            out = Arrays.copyOf(iv, iv.length);
            out[2 * i] = s;
        } else {
            out = new long[iv.length + 2];
            System.arraycopy(iv, 0, out, 0, 2 * i);
            out[2 * i] = s;
            out[2 * i + 1] = s;
            System.arraycopy(iv, 2 * i, out, 2 * i + 2, iv.length - 2 * i);
        }
        return out;
    }
}
