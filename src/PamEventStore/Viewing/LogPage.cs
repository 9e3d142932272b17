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
    /// <summary>Decrypted, and its content matches the SHA-256 recorded when it was accepted.</summary>
    [JsonStringEnumMemberName("ok")] Ok,

    /// <summary>Does not open under its key at its place: altered, moved, or its key is gone.</summary>
    [JsonStringEnumMemberName("undecryptable")] Undecryptable,

    /// <summary>Opens, but is not the content that was accepted.</summary>
    [JsonStringEnumMemberName("hash-mismatch")] HashMismatch,

    /// <summary>Indexed, but its event is not in the stream.</summary>
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
    string Sha256,
    BatchReadStatus Status)
{
    public static LogPageBatch From(RecordedBatch batch, BatchReadStatus status) => new(
        batch.Sequence, batch.StartOffset, batch.EndOffset, batch.EventCount, batch.FirstEventAt, batch.LastEventAt,
        Convert.ToHexStringLower(batch.ContentSha256), status);
}

public static class StoredRecording
{
    /// <summary>Decrypts stored content and checks it against the hash recorded when it was accepted.</summary>
    /// <returns>The canonical events (a JSON array) when the status is <see cref="BatchReadStatus.Ok"/>.</returns>
    public static async Task<(BatchReadStatus Status, byte[]? Content)> OpenAsync(
        RecordingCipher cipher, RecordingPlace place, string keyId, byte[] ciphertext, byte[] expectedSha256, CancellationToken ct)
    {
        byte[] content;
        try
        {
            content = await cipher.OpenAsync(place, keyId, ciphertext, ct);
        }
        catch (CryptographicException)
        {
            return (BatchReadStatus.Undecryptable, null);
        }

        return SHA256.HashData(content).AsSpan().SequenceEqual(expectedSha256)
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
    private static readonly JsonSerializerOptions MetadataOptions = new(JsonSerializerDefaults.Web);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = StatusCodes.Status200OK;
        httpContext.Response.ContentType = "application/json; charset=utf-8";
        var output = httpContext.Response.BodyWriter;

        output.Write("{\"logs\":["u8);
        var first = true;
        foreach (var content in Contents)
        {
            // A canonical batch is "[e1,e2,...]": its inside is a list of events ready to splice.
            if (content is not { Length: > 2 }) continue;
            if (!first) output.Write(","u8);
            output.Write(content.AsSpan(1, content.Length - 2));
            first = false;
            await output.FlushAsync(httpContext.RequestAborted);
        }

        output.Write(HasMore ? "],\"hasMore\":true"u8 : "],\"hasMore\":false"u8);
        output.Write(Encoding.UTF8.GetBytes($",\"batchCount\":{BatchCount},\"batches\":"));
        output.Write(JsonSerializer.SerializeToUtf8Bytes(Batches, MetadataOptions));
        output.Write("}"u8);
        await output.FlushAsync(httpContext.RequestAborted);
    }
}
