using System.Text;
using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
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
    DateTimeOffset FirstEventAt,
    DateTimeOffset LastEventAt,
    string Fingerprint,
    BatchReadStatus Status)
{
    public static LogPageBatch From(long sequence, BatchUploaded batch, BatchReadStatus status) => new(
        sequence, batch.StartOffset, batch.EndOffset, batch.EventCount, batch.FirstEventAt, batch.LastEventAt,
        Convert.ToHexStringLower(batch.ContentFingerprint), status);

    /// <summary>Indexed by the session, but not found in its stream.</summary>
    public static LogPageBatch Missing(long sequence) => new(sequence, 0, null, 0, default, default, "", BatchReadStatus.Missing);
}

public static class StoredRecording
{
    /// <summary>Decrypts stored content and checks it against the fingerprint recorded when it was accepted.</summary>
    /// <returns>The canonical events (a JSON array) when the status is <see cref="BatchReadStatus.Ok"/>.</returns>
    public static async Task<(BatchReadStatus Status, byte[]? Content)> OpenAsync(
        RecordingCipher cipher, ContentFingerprint fingerprint, RecordingPlace place, string keyId, byte[] ciphertext, byte[] expectedFingerprint, CancellationToken ct)
    {
        byte[] content;
        try
        {
            content = await cipher.OpenAsync(place, keyId, ciphertext, ct);
        }
        catch (Exception e) when (e is CryptographicException or InvalidOperationException)
        {
            // Altered, moved, or sealed with a key that can no longer be unwrapped: this batch only.
            return (BatchReadStatus.Undecryptable, null);
        }

        return fingerprint.Matches(SHA256.HashData(content), expectedFingerprint)
            ? (BatchReadStatus.Ok, content)
            : (BatchReadStatus.HashMismatch, null);
    }
}

/// <summary>
/// Writes <c>{"logs": [...], "hasMore", "batchCount", "batches"}</c>. The stored content is already
/// canonical JSON, so the events of each batch are copied into <c>logs</c> as they are instead of
/// being parsed and serialized again.
/// </summary>
public sealed record LogPage(IReadOnlyList<byte[]?> Contents, bool HasMore, int BatchCount, IReadOnlyList<LogPageBatch> Batches) : IResult
{
    private const int FlushThreshold = 256 * 1024;

    private static readonly JsonSerializerOptions MetadataOptions = new(JsonSerializerDefaults.Web);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var events = Contents.Where(c => c is { Length: > 2 }).Select(c => c!).ToList();
        var tail = Encoding.UTF8.GetBytes($"],\"hasMore\":{(HasMore ? "true" : "false")},\"batchCount\":{BatchCount},\"batches\":")
            .Concat(JsonSerializer.SerializeToUtf8Bytes(Batches, MetadataOptions))
            .Append((byte)'}')
            .ToArray();

        // A known length spares chunked framing, and lets the client allocate the body once.
        httpContext.Response.StatusCode = StatusCodes.Status200OK;
        httpContext.Response.ContentType = "application/json; charset=utf-8";
        httpContext.Response.ContentLength = Prefix.Length + events.Sum(e => e.Length - 2) + Math.Max(0, events.Count - 1) + tail.Length;

        var output = httpContext.Response.BodyWriter;
        output.Write(Prefix);
        long unflushed = 0;
        for (var i = 0; i < events.Count; i++)
        {
            // A canonical batch is "[e1,e2,...]": its inside is a list of events ready to splice.
            if (i > 0) output.Write(","u8);
            output.Write(events[i].AsSpan(1, events[i].Length - 2));

            // Send in large writes: a flush per batch would be a system call per batch.
            unflushed += events[i].Length;
            if (unflushed >= FlushThreshold)
            {
                await output.FlushAsync(httpContext.RequestAborted);
                unflushed = 0;
            }
        }

        output.Write(tail);
        await output.FlushAsync(httpContext.RequestAborted);
    }

    private static ReadOnlySpan<byte> Prefix => "{\"logs\":["u8;
}
