using System.Buffers;
using Microsoft.AspNetCore.Mvc;

namespace PamEventStore.Http;

/// <summary>Reads a request body into memory up to a limit, refusing larger ones before reading them when it can.</summary>
public static class RequestBody
{
    /// <summary>The gateway sends octet-stream; JSON is accepted for humans with curl.</summary>
    public static bool IsAcceptedContentType(string? contentType) =>
        contentType is null
        || contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase)
        || contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);

    public static async Task<(byte[]? Body, ProblemDetails? Problem)> ReadAsync(HttpRequest request, int limit, CancellationToken ct)
    {
        if (!IsAcceptedContentType(request.ContentType)) return (null, Problems.UnsupportedMediaType(request.ContentType));
        if (request.ContentLength > limit) return (null, Problems.PayloadTooLarge(limit));

        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(request.ContentLength ?? 16 * 1024, limit) + 1);
        while (true)
        {
            var memory = buffer.GetMemory(8 * 1024);
            var read = await request.Body.ReadAsync(memory, ct);
            if (read == 0) break;
            buffer.Advance(read);

            // A chunked body has no length up front: stop reading as soon as it passes the limit.
            if (buffer.WrittenCount > limit) return (null, Problems.PayloadTooLarge(limit));
        }

        return (buffer.WrittenSpan.ToArray(), null);
    }
}
