using System.Text;
using System.Text.Json;
using PamEventStore.Gateway.Client;

namespace PamEventStore.Gateway.Watching;

/// <summary>
/// <c>pam-gateway watch</c>: follows a session live through the service's tail, as an auditor would
/// watch it: terminal output as the user saw it, command logs as queries and their results, HTTP
/// exchanges as requests and statuses. A dropped connection is resumed after the last batch shown.
/// </summary>
public sealed class SessionWatch(PamApiClient client, string readerToken, Guid sessionId)
{
    /// <returns>The session's end as the service sent it, or null when the stream closed without one.</returns>
    public async Task<JsonElement?> RunAsync(long? from, TextWriter output, Action<string> progress, CancellationToken ct)
    {
        long? last = null;
        JsonElement? ended = null;
        var resumed = false;
        while (true)
        {
            try
            {
                await foreach (var e in client.TailAsync(readerToken, sessionId, last is null ? from : null, last, ct))
                {
                    if (e.Name == "batch")
                    {
                        last = e.Id;
                        var status = e.Data.GetProperty("batch").GetProperty("status").GetString();
                        if (status != "ok") progress($"[batch {e.Id}: {status}]");
                        foreach (var logged in e.Data.GetProperty("logs").EnumerateArray()) output.Write(Render(logged));
                        await output.FlushAsync(ct);
                    }
                    else if (e.Name == "end")
                    {
                        ended = e.Data.GetProperty("session");
                        progress($"[session ended{(ended.Value.GetProperty("seal") is { ValueKind: JsonValueKind.Object } seal ? $", sealed at event {seal.GetProperty("length")}: {seal.GetProperty("head").GetString()}" : "")}]");
                    }
                }

                return ended;
            }
            // A service that cannot be reached at all is said at once: there is nothing to resume.
            catch (HttpRequestException e) when (e.StatusCode is null && last is null && ended is null && !resumed && !ct.IsCancellationRequested)
            {
                throw new HttpRequestException($"the service cannot be reached: {e.Message}", e.InnerException);
            }
            catch (Exception e) when (e is HttpRequestException { StatusCode: null } or IOException && !ct.IsCancellationRequested)
            {
                resumed = true;
                progress($"[connection lost: {e.Message}; resuming after batch {last?.ToString() ?? "none"}]");
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }
    }

    /// <summary>One recorded event as a watcher reads it; events with nothing to show (input echoed by the terminal, resizes) give nothing.</summary>
    public static string Render(JsonElement logged)
    {
        if (logged.TryGetProperty("input", out var input) && logged.TryGetProperty("output", out var result))
            return $"> {input.GetString()}\n{result.GetString()}\n";

        var eventType = logged.TryGetProperty("eventType", out var type) ? type.GetString() : null;
        if (logged.TryGetProperty("requestId", out _))
        {
            return eventType == "request"
                ? $"-> {Text(logged, "method")} {Text(logged, "url")}\n"
                : $"<- {Text(logged, "status")}\n";
        }

        return eventType is "output" or "error" && logged.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.String
            ? Encoding.UTF8.GetString(data.GetBytesFromBase64())
            : "";
    }

    private static string Text(JsonElement logged, string name) =>
        logged.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";
}
