using System.Text;
using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using PamEventStore.Crypto;
using PamEventStore.Sessions;

namespace PamEventStore.Viewing;

[JsonConverter(typeof(JsonStringEnumConverter<BatchReadStatus>))]
public enum BatchReadStatus
{
    /// <summary>Decrypted, and its content matches the fingerprint recorded when it was accepted.</summary>
    [JsonStringEnumMemberName("ok")] Ok,

    /// <summary>Does not open under its key at its place: altered, moved, or its key is gone.</summary>
    [JsonStringEnumMemberName("undecryptable")] Undecryptable,

    /// <summary>Opens, but is not the content that was accepted.</summary>
    [JsonStringEnumMemberName("hash-mismatch")] HashMismatch,

    /// <summary>Counted by the session, but its event is not in the stream (or not readable).</summary>
    [JsonStringEnumMemberName("missing")] Missing,
}

/// <summary>One batch of a log page: where it came from and whether its events are in <c>logs</c>.</summary>
public sealed record LogPageBatch(
    long Sequence,
    long StartOffset,
    long? EndOffset,
    int EventCount,
    DateTimeOffset? FirstEventAt,
    DateTimeOffset? LastEventAt,
    string Fingerprint,
    BatchReadStatus Status)
{
    /// <summary>The session's legacy upload (its whole recording, one more page after its batches); absent for batches.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Legacy { get; init; }

    public static LogPageBatch From(long sequence, BatchUploaded batch, BatchReadStatus status) => new(
        sequence, batch.StartOffset, batch.EndOffset, batch.EventCount, batch.FirstEventAt, batch.LastEventAt,
        Convert.ToHexStringLower(batch.ContentFingerprint), status);

    /// <summary>The legacy upload at its place after the batches, whether or not it opened.</summary>
    public static LogPageBatch OfLegacy(long sequence, LegacyLogsUploaded logs, BatchReadStatus status) => new(
        sequence, 0, null, logs.EventCount, logs.FirstEventAt, logs.LastEventAt,
        Convert.ToHexStringLower(logs.ContentFingerprint), status) { Legacy = true };

    /// <summary>Indexed by the session, but not found in its stream.</summary>
    public static LogPageBatch Missing(long sequence) => new(sequence, 0, null, 0, null, null, "", BatchReadStatus.Missing);
}

public static class StoredRecording
{
    /// <summary>Decrypts stored content and checks it against the fingerprint recorded when it was accepted.</summary>
    /// <returns>The canonical events (a JSON array) when the status is <see cref="BatchReadStatus.Ok"/>.</returns>
    public static async Task<(BatchReadStatus Status, byte[]? Content)> OpenAsync(
        RecordingCipher cipher, ContentFingerprint fingerprint, RecordingPlace place, IEncryptedRecording recording, CancellationToken ct)
    {
        byte[] content;
        try
        {
            content = await cipher.OpenAsync(place, recording, ct);
        }
        catch (Exception e) when (e is CryptographicException or InvalidOperationException)
        {
            // Altered, moved, or sealed with a key that can no longer be unwrapped: this batch only.
            return (BatchReadStatus.Undecryptable, null);
        }

        return fingerprint.Matches(SHA256.HashData(content), recording.ContentFingerprint)
            ? (BatchReadStatus.Ok, content)
            : (BatchReadStatus.HashMismatch, null);
    }
}

/// <summary>
/// Where a page ends, as <c>hasMore</c> and <c>batchCount</c>: known for certain only once its batches
/// are read (a page cut short by its byte bound ends earlier than asked), so written after them.
/// </summary>
public sealed class PageEnd(bool hasMore, int batchCount)
{
    public bool HasMore { get; private set; } = hasMore;

    public int BatchCount { get; private set; } = batchCount;

    /// <summary>The page ends before the batch it was to end with: the rest is for the next page.</summary>
    public void CutShort(int batchCount)
    {
        HasMore = true;
        BatchCount = batchCount;
    }
}

/// <summary>The batches <c>[Offset, End)</c> of one session a page (or a live tail) reads: every one of them gets an entry.</summary>
internal sealed record PageExtent(string OrgId, Guid SessionId, long Offset, long End)
{
    public IEnumerable<OpenedBatch> Missing(long from, long until)
    {
        for (var sequence = from; sequence < until; sequence++) yield return new OpenedBatch(LogPageBatch.Missing(sequence), null);
    }

    public IEnumerable<OpenedBatch> AllMissing() => Missing(Offset, End);
}

/// <summary>One batch of a page as it is opened (or the legacy recording): its entry in <c>batches</c> and its events.</summary>
public sealed record OpenedBatch(LogPageBatch? Entry, byte[]? Content);

/// <summary>
/// Writes <c>{"logs": [...], "hasMore", "batchCount", "batches"}</c> while the batches are still being
/// read and opened: the client receives the first events while later rows are still coming from
/// PostgreSQL, and the service never holds a whole page. The stored content is already canonical
/// JSON, so the events of each batch are copied into <c>logs</c> as they are instead of being parsed
/// and serialized again. <c>batches</c> comes last, once every batch's status is known.
/// </summary>
public sealed record LogPage(IAsyncEnumerable<OpenedBatch> Opened, PageEnd End) : IResult
{
    public LogPage(IAsyncEnumerable<OpenedBatch> opened, bool hasMore, int batchCount) : this(opened, new PageEnd(hasMore, batchCount))
    {
    }

    // Large enough to spare a system call per batch, small enough that the client starts reading early.
    private const int FlushThreshold = 64 * 1024;

    public static LogPage Of(IEnumerable<OpenedBatch> opened, bool hasMore, int batchCount) => new(opened.ToAsyncEnumerable(), hasMore, batchCount);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var ct = httpContext.RequestAborted;
        await using var batches = Opened.GetAsyncEnumerator(ct);

        // The first batch before anything is written: should the database fail here, the error handler
        // still answers with a clean problem (503 when it cannot be reached).
        var more = await batches.MoveNextAsync();
        httpContext.Response.StatusCode = StatusCodes.Status200OK;
        httpContext.Response.ContentType = "application/json; charset=utf-8";

        var output = httpContext.Response.BodyWriter;
        output.Write(Prefix);
        try
        {
            var entries = new List<LogPageBatch>();
            var first = true;
            long unflushed = 0;
            for (; more; more = await batches.MoveNextAsync())
            {
                var (entry, content) = batches.Current;
                if (entry is not null) entries.Add(entry);
                if (content is not { Length: > 2 }) continue;

                // A canonical batch is "[e1,e2,...]": its inside is a list of events ready to splice.
                if (!first) output.Write(","u8);
                first = false;
                output.Write(content.AsSpan(1, content.Length - 2));

                unflushed += content.Length;
                if (unflushed >= FlushThreshold)
                {
                    // A completed pipe is a client that went away: stop reading and decrypting for nobody.
                    if ((await output.FlushAsync(ct)).IsCompleted) return;
                    unflushed = 0;
                }
            }

            output.Write(Encoding.UTF8.GetBytes($"],\"hasMore\":{(End.HasMore ? "true" : "false")},\"batchCount\":{End.BatchCount},\"batches\":"));
            output.Write(JsonSerializer.SerializeToUtf8Bytes(entries, LogPageJson.Default.ListLogPageBatch));
            output.Write("}"u8);
            await output.FlushAsync(ct);
        }
        catch (Exception failure) when (!ct.IsCancellationRequested)
        {
            // Part of the page is written (if not yet sent): no problem answer can follow it, and the
            // error handler would append one. Cut the connection, so the reader sees a broken page, never
            // one that looks whole or a 503 after half a page.
            httpContext.RequestServices?.GetService<ILogger<LogPage>>()?.LogError(failure, "A log page failed after it began; the connection is cut");
            httpContext.Abort();
        }
    }

    private static ReadOnlySpan<byte> Prefix => "{\"logs\":["u8;
}

/// <summary>The <c>batches</c> entries' JSON, generated at compile time (a page writes up to a hundred). Web defaults: camelCase.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(List<LogPageBatch>))]
[JsonSerializable(typeof(LogPageBatch))]
internal sealed partial class LogPageJson : JsonSerializerContext;
