using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace PamEventStore.Sessions;

/// <summary>
/// Where one stored batch is, without its content: the index that log pages walk by sequence and
/// re-uploads of old offsets are checked against. The ciphertext stays in the event row it points
/// to (<see cref="StreamVersion"/>), stored once.
/// </summary>
public sealed class RecordedBatch
{
    public string Id { get; set; } = "";
    public Guid SessionId { get; set; }
    public long Sequence { get; set; }
    public long StartOffset { get; set; }
    public long? EndOffset { get; set; }
    public int FirstEventIndex { get; set; }
    public int EventCount { get; set; }
    public DateTimeOffset FirstEventAt { get; set; }
    public DateTimeOffset LastEventAt { get; set; }
    public byte[] ContentSha256 { get; set; } = [];
    public byte[] OffsetContentSha256 { get; set; } = [];
    public int PlaintextBytes { get; set; }
    public string KeyId { get; set; } = "";
    public long StreamVersion { get; set; }
    public DateTimeOffset UploadedAt { get; set; }

    /// <summary>Batches are found by session and sequence through the primary key, no extra index.</summary>
    public static string IdFor(Guid sessionId, long sequence) => $"{sessionId:N}:{sequence}";

    /// <summary>What is stored at an offset, in the shape upload decisions compare against.</summary>
    public static async Task<IReadOnlyList<OffsetSegment>> SegmentsAtAsync(IQuerySession db, Guid sessionId, long startOffset, CancellationToken ct)
    {
        var batches = await db.Query<RecordedBatch>()
            .Where(x => x.SessionId == sessionId && x.StartOffset == startOffset)
            .OrderBy(x => x.Sequence)
            .ToListAsync(ct);
        return batches.Select(b => new OffsetSegment(b.FirstEventIndex + b.EventCount, b.OffsetContentSha256)).ToList();
    }
}

public partial class RecordedBatchProjection : EventProjection
{
    public RecordedBatch Create(IEvent<BatchUploaded> e) => new()
    {
        Id = RecordedBatch.IdFor(e.StreamId, e.Data.Sequence),
        SessionId = e.StreamId,
        Sequence = e.Data.Sequence,
        StartOffset = e.Data.StartOffset,
        EndOffset = e.Data.EndOffset,
        FirstEventIndex = e.Data.FirstEventIndex,
        EventCount = e.Data.EventCount,
        FirstEventAt = e.Data.FirstEventAt,
        LastEventAt = e.Data.LastEventAt,
        ContentSha256 = e.Data.ContentSha256,
        OffsetContentSha256 = e.Data.OffsetContentSha256,
        PlaintextBytes = e.Data.PlaintextBytes,
        KeyId = e.Data.KeyId,
        StreamVersion = e.Version,
        UploadedAt = e.Data.UploadedAt,
    };
}
