using System.Diagnostics;
using System.Text;
using PamEventStore.Gateway.Client;
using PamEventStore.Gateway.Recording;

namespace PamEventStore.Gateway.Replay;

/// <summary>The session a replay recorded; <see cref="Complete"/> is false when the service refused its final upload, so it holds less than the cast.</summary>
public sealed record ReplayResult(Guid SessionId, bool Complete);

/// <summary>
/// Plays an asciicast as a live SSH session through a gateway: events enter the recording file at
/// their own pace (scaled by <c>speed</c>) and are flushed every interval, so a viewer polling the log
/// sees the session unfold.
/// </summary>
public sealed class LiveReplay(PamApiClient client, DevelopmentTokens tokens, string orgId, string gatewayId)
{
    public async Task<ReplayResult> RunAsync(Asciicast cast, double speed, TimeSpan interval, Action<string> progress, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(speed);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        var sessionId = await client.CreateSessionAsync(tokens.Platform(orgId), new NewSession("replay", "ssh", "asciicast", "operator", "replay-user", gatewayId), ct);
        var uploader = new SessionUploader(client, sessionId, tokens.Gateway(orgId, gatewayId), sendEndOffset: true);
        progress($"session {sessionId}: replaying {cast.Events.Count} events at {speed}x");

        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var nextFlush = interval;
        foreach (var e in cast.Events)
        {
            var due = TimeSpan.FromSeconds(e.Time / speed);
            while (nextFlush < due)
            {
                await DelayUntil(clock, nextFlush, ct);
                await Flush(uploader, progress, ct);
                nextFlush += interval;
            }

            await DelayUntil(clock, due, ct);
            if (ToSessionEvent(e, started) is { } recorded) uploader.File.Append(recorded);
        }

        var end = await uploader.EndAsync("cancellation", ct);
        if (!end.Ended)
        {
            throw new InvalidOperationException(
                $"session {sessionId}: not ended, its final upload or its end failed ({(int)end.Failed!.Status} {end.Failed.ProblemType ?? end.Failed.Detail}); {uploader.File.PendingJsonBytes} bytes of recording not stored");
        }

        if (end.Refused is { } refused) progress($"session {sessionId}: its final upload was refused ({(int)refused.Status} {refused.ProblemType}); ended without it");
        progress($"session {sessionId}: ended" + (end.Seal is not { } seal ? "" : $", sealed at event {seal.Length}: {seal.Head}"));
        return new ReplayResult(sessionId, end.Refused is null);
    }

    /// <summary>o/i become output/input events; r (resize, "COLSxROWS") a resize event; markers are not recorded.</summary>
    public static byte[]? ToSessionEvent(CastEvent e, DateTimeOffset sessionStart) => e.Code switch
    {
        "o" => GoJson.SessionEvent(sessionStart.AddSeconds(e.Time), "output", "terminal", Encoding.UTF8.GetBytes(e.Data), e.Time),
        "i" => GoJson.SessionEvent(sessionStart.AddSeconds(e.Time), "input", "terminal", Encoding.UTF8.GetBytes(e.Data), e.Time),
        "r" => GoJson.SessionEvent(sessionStart.AddSeconds(e.Time), "resize", "terminal", Encoding.UTF8.GetBytes(e.Data), e.Time),
        _ => null,
    };

    private static async Task Flush(SessionUploader uploader, Action<string> progress, CancellationToken ct)
    {
        var pending = uploader.File.NextBatch(SessionUploader.DefaultMaxBatchBytes);
        var result = await uploader.FlushAsync(ct);
        if (result is not null && pending is not null)
            progress($"  batch at offset {pending.StartOffset}: {pending.EventCount} events -> {(int)result.Status}{(result.Duplicate ? " duplicate" : "")}");
    }

    private static Task DelayUntil(Stopwatch clock, TimeSpan due, CancellationToken ct)
    {
        var wait = due - clock.Elapsed;
        return wait > TimeSpan.Zero ? Task.Delay(wait, ct) : Task.CompletedTask;
    }
}
