using System.Text.Json;
using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace PamEventStore.Sessions;

/// <summary>
/// Where one stored batch is, without its content: the index log pages find their first and last
/// batch by (its primary key is session and sequence), and re-uploads of old offsets are checked
/// against. Everything else about a batch, and its ciphertext, stays in its event row
/// (<see cref="StreamVersion"/>), stored once.
/// </summary>
public sealed class RecordedBatch
{
    public string Id { get; set; } = "";
    public Guid SessionId { get; set; }
    public long Sequence { get; set; }
    public long StartOffset { get; set; }
    public long StreamVersion { get; set; }

    /// <summary>Events stored at <see cref="StartOffset"/> up to and including this batch, and their fingerprint.</summary>
    public int SegmentEnd { get; set; }
    public byte[] OffsetFingerprint { get; set; } = [];

    /// <summary>The entry a stored batch event gives: what the projection writes, and what the integrity check expects.</summary>
    public static RecordedBatch Of(Guid sessionId, BatchUploaded batch, long streamVersion) => new()
    {
        Id = IdFor(sessionId, batch.Sequence),
        SessionId = sessionId,
        Sequence = batch.Sequence,
        StartOffset = batch.StartOffset,
        StreamVersion = streamVersion,
        SegmentEnd = batch.FirstEventIndex + batch.EventCount,
        OffsetFingerprint = batch.OffsetFingerprint,
    };

    /// <summary>Batches are found by session and sequence through the primary key, no extra index.</summary>
    public static string IdFor(Guid sessionId, long sequence) => $"{sessionId:N}:{sequence}";

    /// <summary>
    /// What is stored at an offset, in the shape upload decisions compare against: only entries that are
    /// the session's batches (their id theirs, their sequence below <paramref name="batchCount"/>), so an
    /// entry written into the index by other means does not decide a re-upload. Entries are read as
    /// their stored JSON, field by field: an altered one (a field that is not what it should be) decides
    /// nothing either, where reading it as a document would fail the upload, and every upload committed
    /// with it, with a 500.
    /// </summary>
    /// <returns>The batches stored at the offset, in order: each one's segment, and where its event is.</returns>
    public static async Task<IReadOnlyList<StoredSegment>> StoredAtAsync(IQuerySession db, Guid sessionId, long startOffset, long batchCount, CancellationToken ct)
    {
        using var json = new MemoryStream();
        await db.Query<RecordedBatch>().Where(x => x.SessionId == sessionId && x.StartOffset == startOffset).StreamJsonArray(json, ct);
        using var entries = JsonDocument.Parse(json.GetBuffer().AsMemory(0, (int)json.Length));

        var segments = new List<StoredSegment>();
        foreach (var entry in entries.RootElement.EnumerateArray())
        {
            if (entry.ValueKind == JsonValueKind.Object
                && entry.TryGetProperty("sequence", out var sequence) && sequence.ValueKind == JsonValueKind.Number && sequence.TryGetInt64(out var number)
                && number >= 0 && number < batchCount
                && entry.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() == IdFor(sessionId, number)
                && entry.TryGetProperty("segmentEnd", out var end) && end.ValueKind == JsonValueKind.Number && end.TryGetInt32(out var eventCountEnd)
                && entry.TryGetProperty("offsetFingerprint", out var fingerprint) && fingerprint.ValueKind == JsonValueKind.String
                && fingerprint.TryGetBytesFromBase64(out var fingerprintBytes))
            {
                // The segment decides re-uploads on its own; where its event is only serves to open it.
                long? streamVersion = entry.TryGetProperty("streamVersion", out var version) && version.ValueKind == JsonValueKind.Number && version.TryGetInt64(out var v) ? v : null;
                segments.Add(new StoredSegment(number, streamVersion, new OffsetSegment(eventCountEnd, fingerprintBytes)));
            }
        }

        return segments.OrderBy(s => s.Sequence).ToList();
    }
}

/// <summary>A batch stored at an offset: its number in the session, the stream version of its event (null when its entry does not say), and its segment.</summary>
public sealed record StoredSegment(long Sequence, long? StreamVersion, OffsetSegment Segment);

public partial class RecordedBatchProjection : EventProjection
{
    public RecordedBatch Create(IEvent<BatchUploaded> e) => RecordedBatch.Of(e.StreamId, e.Data, e.Version);
}
