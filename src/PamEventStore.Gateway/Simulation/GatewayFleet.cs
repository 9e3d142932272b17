using System.Collections.Concurrent;
using System.Diagnostics;
using PamEventStore.Gateway.Client;
using PamEventStore.Gateway.Workloads;

namespace PamEventStore.Gateway.Simulation;

public sealed record FleetOptions
{
    public required string OrgId { get; init; }
    public int Gateways { get; init; } = 2;
    public int SessionsPerGateway { get; init; } = 5;

    /// <summary><c>terminal</c> (SSH) or <c>sql</c> (PostgreSQL command logs).</summary>
    public string Kind { get; init; } = "terminal";

    /// <summary>How often each session flushes, as the Infisical gateway does every 10 s.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan Duration { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Recorded JSON per session per interval.</summary>
    public int BatchBytes { get; init; } = 4096;

    /// <summary>Send endOffset (this service's extension); false behaves exactly like an Infisical gateway.</summary>
    public bool SendEndOffset { get; init; } = true;

    public bool EndSessions { get; init; } = true;
}

/// <param name="Uploads">Flushes the service answered with success (stored, or already stored); failed ones are only in <paramref name="Failures"/>.</param>
/// <param name="Latency">Every answered flush, successful or not.</param>
public sealed record FleetReport(
    int Sessions,
    int Uploads,
    int Duplicates,
    IReadOnlyDictionary<int, int> Failures,
    LatencyRecorder Latency,
    TimeSpan MaxLag,
    TimeSpan Elapsed,
    TimeSpan Interval)
{
    /// <summary>Over the time uploads were due: a session's first flush comes an interval after it starts recording.</summary>
    public double UploadsPerSecond => Uploads / Math.Max((Elapsed - Interval).TotalSeconds, Interval.TotalSeconds);

    public int FailureCount => Failures.Values.Sum();

    /// <summary>Sessions left open because their final upload or their end failed (what was not sent was kept, not lost).</summary>
    public int NotEnded { get; init; }

    /// <summary>Sessions ended without their final upload, which the service refused for good.</summary>
    public int EndedWithoutFinalUpload { get; init; }
}

/// <summary>
/// Gateways with their sessions, each session flushing every interval at its own phase: the steady
/// load of a fleet of gateways. <see cref="FleetReport.MaxLag"/> is how late the latest flush started
/// against its schedule: a service that keeps up keeps it near zero.
/// </summary>
public sealed class GatewayFleet(PamApiClient client, DevelopmentTokens tokens, FleetOptions options)
{
    public async Task<FleetReport> RunAsync(Action<string>? progress = null, CancellationToken ct = default)
    {
        // Every tick would be due at once, forever.
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.Interval, TimeSpan.Zero);
        var sessions = await OpenSessionsAsync(ct);
        progress?.Invoke($"{sessions.Count} sessions opened in org {options.OrgId}");

        var latency = new LatencyRecorder();
        var failures = new ConcurrentDictionary<int, int>();
        var uploads = 0;
        var duplicates = 0;
        long maxLagTicks = 0;
        var clock = Stopwatch.StartNew();

        await Task.WhenAll(sessions.Select((session, index) => Task.Run(async () =>
        {
            // Spread the sessions over the interval, as independent gateways and users would be.
            var phase = options.Interval * ((double)index / sessions.Count);
            for (var tick = 1; ; tick++)
            {
                var due = phase + options.Interval * tick;
                if (due > options.Duration) break;
                var wait = due - clock.Elapsed;
                if (wait > TimeSpan.Zero) await Task.Delay(wait, ct);
                InterlockedMax(ref maxLagTicks, (clock.Elapsed - due).Ticks);

                session.Workload.Record(session.Uploader.File, options.BatchBytes, options.Interval);
                var started = clock.Elapsed;
                var result = await session.Uploader.FlushAsync(ct);
                if (result is null) continue;
                latency.Record(clock.Elapsed - started);
                if (!result.Succeeded) failures.AddOrUpdate((int)result.Status, 1, (_, n) => n + 1);
                else
                {
                    Interlocked.Increment(ref uploads);
                    if (result.Duplicate) Interlocked.Increment(ref duplicates);
                }
            }
        }, ct)));

        var elapsed = clock.Elapsed;
        var ends = options.EndSessions ? await Task.WhenAll(sessions.Select(s => s.Uploader.EndAsync("cancellation", ct))) : [];
        return new FleetReport(sessions.Count, uploads, duplicates, failures, latency, TimeSpan.FromTicks(maxLagTicks), elapsed, options.Interval)
        {
            NotEnded = ends.Count(e => !e.Ended),
            EndedWithoutFinalUpload = ends.Count(e => e.Refused is not null),
        };
    }

    private sealed record FleetSession(SessionUploader Uploader, Workload Workload);

    /// <summary>Each gateway opens its sessions one after another, the gateways side by side.</summary>
    private async Task<List<FleetSession>> OpenSessionsAsync(CancellationToken ct)
    {
        var platform = tokens.Platform(options.OrgId);
        var gateways = await Task.WhenAll(Enumerable.Range(0, options.Gateways).Select(async g =>
        {
            var gatewayId = $"gw-{g + 1}";
            var gatewayToken = tokens.Gateway(options.OrgId, gatewayId);
            var sessions = new List<FleetSession>();
            for (var s = 0; s < options.SessionsPerGateway; s++)
            {
                var seed = g * 10_000 + s;
                Workload workload = options.Kind == "sql" ? new SqlWorkload(seed, DateTimeOffset.UtcNow) : new TerminalWorkload(seed, DateTimeOffset.UtcNow);
                var id = await client.CreateSessionAsync(platform, new NewSession("simulation", workload.ResourceType, $"{workload.ResourceType}-{s + 1}", "operator", $"user-{s + 1}", gatewayId), ct);
                sessions.Add(new FleetSession(new SessionUploader(client, id, gatewayToken, options.SendEndOffset), workload));
            }

            return sessions;
        }));

        return gateways.SelectMany(sessions => sessions).ToList();
    }

    private static void InterlockedMax(ref long target, long value)
    {
        for (var current = Interlocked.Read(ref target); value > current; current = Interlocked.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, current) == current) return;
        }
    }
}
