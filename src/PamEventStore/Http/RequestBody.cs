using System.Buffers;
using Microsoft.AspNetCore.Mvc;

namespace PamEventStore.Http;

/// <summary>Reads a request body into memory up to a limit, refusing larger ones before reading them when it can.</summary>
public static class RequestBody
{
    /// <summary>The gateway sends octet-stream; JSON is accepted for humans with curl. None declared is read as octets.</summary>
    public static bool IsAcceptedContentType(string? contentType) =>
        contentType is null || Declares(contentType, "application/octet-stream", "application/json");

    /// <summary>
    /// Whether <paramref name="contentType"/> is one of <paramref name="mediaTypes"/>: one media type, well
    /// formed, in UTF-8 if it names a charset at all, so that what is read is what was meant.
    /// </summary>
    public static bool Declares(string? contentType, params ReadOnlySpan<string> mediaTypes)
    {
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var parsed)) return false;
        if (parsed.Charset.HasValue && !parsed.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)) return false;
        foreach (var mediaType in mediaTypes)
        {
            if (parsed.MediaType.Equals(mediaType, StringComparison.OrdinalIgnoreCase)) return true;
        }

        return false;
    }

    /// <summary>
    /// What can be refused before reading anything: a content type or encoding the body is not read as (a
    /// compressed body would be stored as its compressed bytes, or refused as invalid events), a declared
    /// length over the limit.
    /// </summary>
    public static ProblemDetails? RefuseUnread(HttpRequest request, int limit) =>
        !IsAcceptedContentType(request.ContentType) ? Problems.UnsupportedMediaType(request.ContentType)
        : request.Headers.ContentEncoding is { Count: > 0 } encoding && !(encoding is [{ } only] && only.Trim().Equals("identity", StringComparison.OrdinalIgnoreCase))
            ? Problems.UnsupportedContentEncoding(encoding.ToString())
        : request.ContentLength > limit ? Problems.PayloadTooLarge(limit)
        : null;

    /// <summary>
    /// Reads the body as <see cref="ReadAsync"/> does, as long as it arrives at <paramref name="bytesPerSecond"/>
    /// or faster after <paramref name="grace"/>; a slower one is answered 408 <c>request-timeout</c>. Over
    /// HTTP/1.x Kestrel measures the pace as the body arrives and closes the connection of a slow one; on
    /// any protocol, the whole body must be read by the time its declared length (or the limit) takes at that pace.
    /// </summary>
    public static async Task<(byte[]? Body, ProblemDetails? Problem)> ReadPacedAsync(HttpRequest request, int limit, int bytesPerSecond, TimeSpan grace, CancellationToken ct)
    {
        var pacedByKestrel = KestrelPace.OfBody(request, bytesPerSecond, grace);
        var deadline = grace + TimeSpan.FromSeconds((double)Math.Min(request.ContentLength ?? limit, limit) / bytesPerSecond);
        using var paced = CancellationTokenSource.CreateLinkedTokenSource(ct);

        // Where Kestrel paces the body it cuts a slow one off first, leaving the connection in order. The
        // deadline is then a backstop: cancelling a read in progress leaves Kestrel unable to drain the
        // body after the answer, which it logs as an error, once per stalled upload any client can send.
        paced.CancelAfter(pacedByKestrel ? deadline * 1.5 + TimeSpan.FromSeconds(2) : deadline);
        try
        {
            return await ReadAsync(request, limit, paced.Token);
        }
        catch (OperationCanceledException) when (paced.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            return (null, Problems.BodyTooSlow($"The body did not arrive within {deadline.TotalSeconds:0} s, at {bytesPerSecond} bytes/s after {grace.TotalSeconds:0} s; nothing was stored."));
        }
    }

    public static async Task<(byte[]? Body, ProblemDetails? Problem)> ReadAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        if (RefuseUnread(request, limit) is { } refused) return (null, refused);
        try
        {
            return await ReadWithinAsync(request, limit, ct);
        }
        // Kestrel refuses some malformed framing with a plain IOException (a chunk size past 2 GiB) where
        // it refuses the rest with BadHttpRequestException, which keeps its status (ErrorResponses); a
        // client that went away is a subtype (ConnectionResetException), left to go as it did before.
        catch (IOException e) when (e.GetType() == typeof(IOException) && !request.HttpContext.RequestAborted.IsCancellationRequested)
        {
            return (null, Problems.InvalidRequest($"The request body could not be read: {e.Message}"));
        }
    }

    private static async Task<(byte[]? Body, ProblemDetails? Problem)> ReadWithinAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        // A declared length is read straight into a body of that size (the server stops the body there).
        if (request.ContentLength is { } length)
        {
            var body = new byte[length];
            var read = 0;
            while (read < body.Length && await request.Body.ReadAsync(body.AsMemory(read), ct) is var n and > 0) read += n;
            return read == body.Length ? (body, null) : (null, Problems.InvalidRequest($"The body ended after {read} of its {length} declared bytes."));
        }

        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        while (true)
        {
            var memory = buffer.GetMemory(8 * 1024);
            var chunk = await request.Body.ReadAsync(memory, ct);
            if (chunk == 0) break;
            buffer.Advance(chunk);

            // A chunked body has no length up front: stop reading as soon as it passes the limit.
            if (buffer.WrittenCount > limit) return (null, Problems.PayloadTooLarge(limit));
        }

        return (buffer.WrittenSpan.ToArray(), null);
    }
}
