package io.sigmawatch.stream;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.BigIntType;
import org.apache.flink.table.types.logical.IntType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The job's event time, its one watermark, and the split of every landing row into exactly one of four streams,
 * each row looked at once.
 *
 * <p>Event time ({@link EventTime}): a frame's capture time; metrics and statuses at their capture time unless
 * the device clock is ahead by more than the tolerance or behind by more than the allowed lateness (then the
 * bridge's receive time, so the device's health still shows, with the offset); 0 for rows that cannot be valid
 * and for frames captured ahead of the bridge's clock by more than the tolerance (dead-lettered as clock skew).
 * The watermark ({@link ReceiveTimeWatermarks}) follows the bridges' newest receive time minus the
 * out-of-orderness: one trustworthy clock, which a device whose clock runs fast cannot move.
 *
 * <p>The split, against the watermark this operator has received (the same one every operator after it sees):
 * <ul>
 *   <li>main output, on time: valid frames and beats whose earliest window has not fired -> the SQL windows;</li>
 *   <li>{@link #LATE}: valid frames and beats late for their windows but within the allowed lateness, and every
 *       track event and object count within it -> the Python side, which revises the windows' results;</li>
 *   <li>{@link #REJECTS}: invalid rows and everything beyond the allowed lateness -> dead letters;</li>
 *   <li>{@link #TRAILERS}: the landing files' eof trailers -> consumption records and per-device activity.</li>
 * </ul>
 * Each output row is the landing row with four columns appended: {@code ts_ms} (event time, ms), {@code vcat}
 * (category: 0 frame or beat, 2 dead, 3 trailer, 4 track event or object count), {@code kcode} (kind: 0 detections,
 * 1 metrics, 2 status, 3 events, 4 objects) and {@code lt} (1 if late for its earliest window).
 *
 * <p>Why in Java: as SQL, each of those branches was its own operator reading the fields of every row (Flink's
 * generated code copies each string and array field it reads, for every row, before its filter), about half of
 * the SQL path's CPU; here one pass decides, and the windows read only the rows that are on time.
 */
public final class LandingSplit extends ProcessFunction<RowData, RowData> {
    private static final long serialVersionUID = 1L;

    public static final int OK = 0;
    public static final int DEAD = 2;
    public static final int EOF = 3;
    public static final int OBJ = 4;

    /** The message kinds of a valid row; a kind's code is its index ({@code objects} and unknown kinds: 4). */
    static final List<StringData> KINDS = Arrays.asList(
            StringData.fromString("detections"), StringData.fromString("metrics"), StringData.fromString("status"),
            StringData.fromString("events"), StringData.fromString("objects"));
    private static final StringData EOF_KIND = StringData.fromString("eof");

    /** The landing fields this operator reads (indexes into the landing row type). */
    public static final class Fields implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        final int kind;
        final int device;
        final int recvTs;
        final int seq;
        final int ts;
        final int dets;
        final int ob;

        public Fields(int kind, int device, int recvTs, int seq, int ts, int dets, int ob) {
            this.kind = kind;
            this.device = device;
            this.recvTs = recvTs;
            this.seq = seq;
            this.ts = ts;
            this.dets = dets;
            this.ob = ob;
        }
    }

    private final Fields f;
    private final long slideMillis;
    private final long outOfOrdernessMillis;
    private final long lateMillis;               // allowed lateness
    private final OutputTag<RowData> late;
    private final OutputTag<RowData> rejects;
    private final OutputTag<RowData> trailers;

    LandingSplit(Fields f, long slideMillis, long outOfOrdernessMillis, long lateMillis,
                 InternalTypeInfo<RowData> type) {
        this.f = f;
        this.slideMillis = slideMillis;
        this.outOfOrdernessMillis = outOfOrdernessMillis;
        this.lateMillis = lateMillis;
        this.late = new OutputTag<>("late", type);
        this.rejects = new OutputTag<>("rejects", type);
        this.trailers = new OutputTag<>("trailers", type);
    }

    /** The landing row type with the four appended columns. */
    public static RowType splitType(RowType landing) {
        List<RowType.RowField> fields = new ArrayList<>(landing.getFields());
        fields.add(new RowType.RowField("ts_ms", new BigIntType()));
        fields.add(new RowType.RowField("vcat", new IntType()));
        fields.add(new RowType.RowField("kcode", new IntType()));
        fields.add(new RowType.RowField("lt", new IntType()));
        return new RowType(false, fields);
    }

    /**
     * The job's entry point (called from Python through Py4J): timestamps and the watermark on the deduplicated
     * landing rows, then the split. Returns the four streams [on time, late, rejects, trailers], each of
     * {@link #splitType}; every one carries the watermark.
     */
    public static List<DataStream<RowData>> apply(DataStream<RowData> in, Fields f, long slideMillis,
                                                  long outOfOrdernessMillis, long lateMillis, double toleranceSeconds,
                                                  long idleTimeoutMillis) {
        RowType landing = (RowType) ((InternalTypeInfo<RowData>) in.getType()).toLogicalType();
        InternalTypeInfo<RowData> type = InternalTypeInfo.of(splitType(landing));
        EventTime eventTime = new EventTime(f, lateMillis / 1000.0, toleranceSeconds);
        WatermarkStrategy<RowData> strategy = WatermarkStrategy
                .<RowData>forGenerator(ctx -> new ReceiveTimeWatermarks(f.recvTs, outOfOrdernessMillis))
                .withTimestampAssigner((row, previous) -> eventTime.millis(row));
        if (idleTimeoutMillis > 0) {
            strategy = strategy.withIdleness(Duration.ofMillis(idleTimeoutMillis));
        }
        LandingSplit split = new LandingSplit(f, slideMillis, outOfOrdernessMillis, lateMillis, type);
        SingleOutputStreamOperator<RowData> timed = in.assignTimestampsAndWatermarks(strategy)
                .uid("event-time").name("event time, watermark (bridges' receive time)");
        if (in.getParallelism() > 0) {
            timed.setParallelism(in.getParallelism());
        }
        SingleOutputStreamOperator<RowData> ontime = timed.process(split, type).uid("landing-split")
                .name("split: on time / late / rejects / trailers");
        ontime.setParallelism(timed.getParallelism());
        List<DataStream<RowData>> out = new ArrayList<>();
        out.add(ontime);
        out.add(ontime.getSideOutput(split.late));
        out.add(ontime.getSideOutput(split.rejects));
        out.add(ontime.getSideOutput(split.trailers));
        return out;
    }

    /** The event time of a landing row in ms (see the class comment); the timestamp assigner's function. */
    static final class EventTime implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        private final Fields f;
        private final double lateSeconds;
        private final double toleranceSeconds;

        EventTime(Fields f, double lateSeconds, double toleranceSeconds) {
            this.f = f;
            this.lateSeconds = lateSeconds;
            this.toleranceSeconds = toleranceSeconds;
        }

        long millis(RowData row) {
            if (row.isNullAt(f.kind) || row.isNullAt(f.device) || row.isNullAt(f.recvTs)) {
                return 0;
            }
            int k = KINDS.indexOf(row.getString(f.kind));
            if (k < 0) {
                return 0;
            }
            double recv = row.getDouble(f.recvTs);
            if (row.isNullAt(f.ts)) {
                return k == 2 ? (long) (recv * 1000) : 0;
            }
            double ts = row.getDouble(f.ts);
            if ((k == 1 || k == 2) && (ts > recv + toleranceSeconds || recv - ts >= lateSeconds)) {
                return (long) (recv * 1000);
            }
            if (ts > recv + toleranceSeconds) {
                return 0;
            }
            return (long) (ts * 1000);
        }
    }

    /** The row's kind code: its index in KINDS; 4 for objects, unknown kinds and a missing kind. */
    private int kindCode(RowData row) {
        int i = row.isNullAt(f.kind) ? -1 : KINDS.indexOf(row.getString(f.kind));
        return i < 0 ? KINDS.size() - 1 : i;
    }

    /** The row's category: OK (valid frame or beat), DEAD, EOF (trailer) or OBJ (valid track event, counts). */
    int category(RowData row, long tsMs, int kcode) {
        if (!row.isNullAt(f.kind) && EOF_KIND.equals(row.getString(f.kind))) {
            return EOF;
        }
        if (tsMs <= 0) {            // also every unknown kind (see EventTime)
            return DEAD;
        }
        if (kcode >= 3) {           // events, objects
            return !row.isNullAt(f.ob) && (kcode != 3 || !row.isNullAt(f.seq)) ? OBJ : DEAD;
        }
        if (kcode == 0 && (row.isNullAt(f.seq) || row.isNullAt(f.ts) || row.isNullAt(f.dets))) {
            return DEAD;
        }
        return OK;
    }

    /** The last ms of the earliest window containing {@code tsMs}. */
    private long earliestWindowEnd(long tsMs) {
        return tsMs - tsMs % slideMillis + slideMillis - 1;
    }

    /** The earliest window containing {@code tsMs} closed more than {@code extra} ms before the watermark. */
    private boolean fired(long tsMs, long extra, long watermark) {
        return watermark != Long.MIN_VALUE && earliestWindowEnd(tsMs) + extra <= watermark;
    }

    @Override
    public void processElement(RowData row, Context ctx, Collector<RowData> out) {
        Long timestamp = ctx.timestamp();
        long tsMs = timestamp == null ? 0 : timestamp;
        int kcode = kindCode(row);
        int vcat = category(row, tsMs, kcode);
        if (vcat == EOF) {
            ctx.output(trailers, extend(row, tsMs, vcat, kcode, false));
            return;
        }
        long watermark = ctx.timerService().currentWatermark();
        boolean isLate = fired(tsMs, 0, watermark);
        // beyond the allowed lateness by the watermark, or by the row's own receive time minus the
        // out-of-orderness (a lower bound of the watermark it makes: decides rows before the first watermark)
        boolean tooLate = fired(tsMs, lateMillis, watermark)
                || (!row.isNullAt(f.recvTs) && (long) (row.getDouble(f.recvTs) * 1000) - outOfOrdernessMillis
                        >= earliestWindowEnd(tsMs) + lateMillis);
        if (vcat == DEAD || tooLate) {
            ctx.output(rejects, extend(row, tsMs, vcat, kcode, isLate));
        } else if (vcat == OBJ || isLate) {
            ctx.output(late, extend(row, tsMs, vcat, kcode, isLate));
        } else {
            out.collect(extend(row, tsMs, vcat, kcode, false));
        }
    }

    private static RowData extend(RowData row, long tsMs, int vcat, int kcode, boolean isLate) {
        JoinedRowData joined = new JoinedRowData(row, GenericRowData.of(tsMs, vcat, kcode, isLate ? 1 : 0));
        joined.setRowKind(row.getRowKind());
        return joined;
    }

    /** The watermark: the newest receive time of a bridge (ms) minus the out-of-orderness; trailers (no receive
     *  time) do not move it. Like Flink SQL's watermark assigner: no "- 1 ms", emitted periodically. */
    static final class ReceiveTimeWatermarks implements WatermarkGenerator<RowData> {
        private final int recvTs;
        private final long outOfOrdernessMillis;
        private long newest = Long.MIN_VALUE;

        ReceiveTimeWatermarks(int recvTs, long outOfOrdernessMillis) {
            this.recvTs = recvTs;
            this.outOfOrdernessMillis = outOfOrdernessMillis;
        }

        @Override
        public void onEvent(RowData row, long eventTimestamp, WatermarkOutput output) {
            if (!row.isNullAt(recvTs)) {
                newest = Math.max(newest, (long) (row.getDouble(recvTs) * 1000));
            }
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            if (newest != Long.MIN_VALUE) {
                output.emitWatermark(new Watermark(newest - outOfOrdernessMillis));
            }
        }
    }
}
