using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace PamEventStore.Gateway.Client;

/// <summary>What the service answered to an upload.</summary>
/// <param name="Head">Where the session's chain stood with the batch stored (null for a duplicate or a refusal): keep the newest.</param>
public sealed record UploadResult(HttpStatusCode Status, bool Duplicate, long? Sequence, string? ProblemType, string? Detail, KeptHead? Head = null)
{
    public bool Succeeded => Status == HttpStatusCode.OK;

    /// <summary>An Infisical gateway takes any 404 on the batch route for "old platform" and falls back to the legacy upload.</summary>
    public bool MeansOldPlatform => Status == HttpStatusCode.NotFound;

    /// <summary>No answer came (<see cref="Status"/> 0): the connection dropped or the request timed out.</summary>
    public bool NoAnswerCame => Status == 0;

    /// <summary>
    /// The service said no for good: sending the same again gets the same answer (a conflict, a closed
    /// session, a body over the limit, a recording that does not validate, another gateway's session).
    /// No answer, a timeout, too many requests, an expired token or the server's own failure may clear.
    /// </summary>
    public bool RefusedForGood =>
        (int)Status is >= 400 and < 500 && !MeansOldPlatform
        && Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests);

    public static UploadResult NoAnswer(string why) => new(0, false, null, null, why);
}

/// <summary>The session a platform opens for a user, bound to the gateway that will record it.</summary>
public sealed record NewSession(
    string ProjectId,
    string ResourceType,
    string ResourceName,
    string AccountName,
    string UserId,
    string? GatewayId,
    Guid? Id = null,
    DateTimeOffset? ExpiresAt = null);

/// <summary>
/// The reference client of the PAM session API: every call a gateway or platform makes, with the
/// same paths, headers and bodies as the Infisical gateway.
/// </summary>
public sealed class PamApiClient(HttpClient http)
{
    private const string Sessions = "/api/v1/pam/sessions";
    private static readonly MediaTypeHeaderValue OctetStream = new("application/octet-stream");

    /// <summary>
    /// <c>POST {sessionId}/event-batches?startOffset=N</c> with the raw JSON array as octet-stream.
    /// <paramref name="endOffset"/> is this service's extension (gap detection); Infisical gateways omit it.
    /// </summary>
    public async Task<UploadResult> UploadBatchAsync(string gatewayToken, Guid sessionId, long startOffset, long? endOffset, ReadOnlyMemory<byte> events, CancellationToken ct = default)
    {
        var url = $"{Sessions}/{sessionId}/event-batches?startOffset={startOffset}" + (endOffset is { } end ? $"&endOffset={end}" : "");
        using var content = new ReadOnlyMemoryContent(events);
        content.Headers.ContentType = OctetStream;
        using var response = await SendAsync(HttpMethod.Post, url, gatewayToken, content, ct);
        return await ReadUploadResult(response, ct);
    }

    /// <summary><c>POST {sessionId}/logs</c>: the legacy bulk upload of the whole recording at session end.</summary>
    public async Task<UploadResult> UploadLegacyLogsAsync(string gatewayToken, Guid sessionId, ReadOnlyMemory<byte> eventsArray, CancellationToken ct = default)
    {
        var prefix = "{\"logs\":"u8;
        var body = new byte[prefix.Length + eventsArray.Length + 1];
        prefix.CopyTo(body);
        eventsArray.Span.CopyTo(body.AsSpan(prefix.Length));
        body[^1] = (byte)'}';
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await SendAsync(HttpMethod.Post, $"{Sessions}/{sessionId}/logs", gatewayToken, content, ct);
        return await ReadUploadResult(response, ct);
    }

    public async Task<Guid> CreateSessionAsync(string platformToken, NewSession session, CancellationToken ct = default)
    {
        using var response = await SendAsync(HttpMethod.Post, Sessions, platformToken, JsonContent.Create(session, options: JsonOptions), ct);
        var body = await EnsureSuccess(response, ct);
        return body.GetProperty("session").GetProperty("id").GetGuid();
    }

    public async Task<JsonElement> EndSessionAsync(string token, Guid sessionId, string? reason = null, CancellationToken ct = default)
    {
        var url = $"{Sessions}/{sessionId}/end" + (reason is null ? "" : $"?reason={Uri.EscapeDataString(reason)}");
        using var response = await SendAsync(HttpMethod.Post, url, token, null, ct);
        return (await EnsureSuccess(response, ct)).GetProperty("session");
    }

    /// <summary>
    /// <c>GET {sessionId}/integrity</c>: the stored session checked link by link, and against
    /// <paramref name="kept"/> (a seal kept outside the store) when given.
    /// </summary>
    public async Task<JsonElement> GetIntegrityAsync(string token, Guid sessionId, KeptHead? kept = null, CancellationToken ct = default)
    {
        var query = kept is null ? "" : $"?length={kept.Length}&head={Uri.EscapeDataString(kept.Head)}";
        using var response = await SendAsync(HttpMethod.Get, $"{Sessions}/{sessionId}/integrity{query}", token, null, ct);
        return (await EnsureSuccess(response, ct)).GetProperty("integrity");
    }

    public async Task<JsonElement> GetSessionAsync(string token, Guid sessionId, CancellationToken ct = default)
    {
        using var response = await SendAsync(HttpMethod.Get, $"{Sessions}/{sessionId}", token, null, ct);
        return (await EnsureSuccess(response, ct)).GetProperty("session");
    }

    /// <summary><c>GET {sessionId}/logs?offset&amp;limit</c>: a page of decrypted events; both numbers count batches.</summary>
    public async Task<JsonElement> GetLogsAsync(string token, Guid sessionId, long offset, int limit, CancellationToken ct = default)
    {
        using var response = await SendAsync(HttpMethod.Get, $"{Sessions}/{sessionId}/logs?offset={offset}&limit={limit}", token, null, ct);
        return await EnsureSuccess(response, ct);
    }

    /// <summary>
    /// <c>GET {sessionId}/live</c>: the session's events as the service pushes them (server-sent events), from
    /// batch <paramref name="from"/> (null: the next stored) or after <paramref name="lastEventId"/> (a
    /// reconnect), until the service closes the stream. A tail that is over (204) gives nothing.
    /// </summary>
    public async IAsyncEnumerable<TailEvent> TailAsync(
        string token, Guid sessionId, long? from = null, long? lastEventId = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"{Sessions}/{sessionId}/live" + (from is null ? "" : $"?from={from}"));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null) request.Headers.Add("Last-Event-ID", lastEventId.Value.ToString(CultureInfo.InvariantCulture));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NoContent) yield break;
        if (!response.IsSuccessStatusCode) await EnsureSuccess(response, ct);

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);
        string? id = null, name = null, data = null;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0)
            {
                if (name is not null && data is not null)
                {
                    yield return new TailEvent(name, id is null ? null : long.Parse(id, CultureInfo.InvariantCulture), JsonDocument.Parse(data).RootElement.Clone());
                }

                (id, name, data) = (null, null, null);
                continue;
            }

            if (line.StartsWith(':')) continue;
            var colon = line.IndexOf(':');
            var (field, value) = colon < 0 ? (line, "") : (line[..colon], line[(colon + 1)..].TrimStart(' '));
            switch (field)
            {
                case "id": id = value; break;
                case "event": name = value; break;
                case "data": data = data is null ? value : data + "\n" + value; break;
            }
        }
    }

    public async Task<JsonElement> GetUploadStateAsync(string gatewayToken, Guid sessionId, CancellationToken ct = default)
    {
        using var response = await SendAsync(HttpMethod.Get, $"{Sessions}/{sessionId}/upload-state", gatewayToken, null, ct);
        return await EnsureSuccess(response, ct);
    }

    private sealed record Receipt(bool Ok, bool Duplicate, long? Sequence, long? ChainLength, string? ChainHead);

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    private Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, string token, HttpContent? content, CancellationToken ct)
    {
        var request = new HttpRequestMessage(method, url) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.UserAgent.ParseAdd("cli");
        return http.SendAsync(request, ct);
    }

    private static async Task<UploadResult> ReadUploadResult(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.StatusCode == HttpStatusCode.OK)
        {
            // The common answer, read without building a document: a gateway sends one every few seconds per session.
            var receipt = JsonSerializer.Deserialize<Receipt>(await response.Content.ReadAsByteArrayAsync(ct), JsonOptions);
            var head = receipt is { ChainLength: { } length, ChainHead: { } link } ? new KeptHead(length, link) : null;
            return new UploadResult(response.StatusCode, receipt?.Duplicate ?? false, receipt?.Sequence, null, null, head);
        }

        var body = await ReadJson(response, ct);
        return new UploadResult(response.StatusCode, false, null, Property(body, "type"), Property(body, "detail"));
    }

    private static async Task<JsonElement> EnsureSuccess(HttpResponseMessage response, CancellationToken ct)
    {
        var body = await ReadJson(response, ct);
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"{(int)response.StatusCode} {Property(body, "type")}: {Property(body, "detail")}", null, response.StatusCode);
        return body;
    }

    private static async Task<JsonElement> ReadJson(HttpResponseMessage response, CancellationToken ct)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync(ct);
        if (bytes.Length == 0) return default;
        try
        {
            return JsonDocument.Parse(bytes).RootElement;
        }
        catch (JsonException)
        {
            return default;
        }
    }

    private static string? Property(JsonElement body, string name) =>
        body.ValueKind == JsonValueKind.Object && body.TryGetProperty(name, out var value) ? value.ToString() : null;
}

/// <summary>
/// A head of a session's chain (a link and the length it was taken at) kept outside the store: the
/// seal from its end, or the head an upload answered. An integrity check with it shows whether the
/// stored session was cut or rewritten since.
/// </summary>
/// <summary>One event of a live tail: <c>batch</c> (its <see cref="Id"/> the batch's sequence; <c>data</c> <c>{sequence, batch, logs}</c>) or <c>end</c> (<c>{session}</c>).</summary>
public sealed record TailEvent(string Name, long? Id, JsonElement Data);

public sealed record KeptHead(long Length, string Head)
{
    /// <returns>Where the session's chain stands, or null from a service without chains.</returns>
    public static KeptHead? HeadOf(JsonElement session) =>
        session.TryGetProperty("chainHead", out var head) && head.ValueKind == JsonValueKind.String
            ? new KeptHead(session.GetProperty("chainLength").GetInt64(), head.GetString()!)
            : null;

    /// <returns>The session's seal, or null before the end (or from a service without seals).</returns>
    public static KeptHead? SealOf(JsonElement session) =>
        session.TryGetProperty("seal", out var seal) && seal.ValueKind == JsonValueKind.Object
            ? new KeptHead(seal.GetProperty("length").GetInt64(), seal.GetProperty("head").GetString()!)
            : null;
}
