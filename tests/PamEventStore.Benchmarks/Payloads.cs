using PamEventStore.Gateway.Recording;
using PamEventStore.Gateway.Workloads;

namespace PamEventStore.Benchmarks;

/// <summary>A session's batches, generated before the clock starts so the load generator only sends.</summary>
public sealed record SessionPlan(Guid SessionId, string GatewayId, string ResourceType, IReadOnlyList<PendingBatch> Batches);

public static class Payloads
{
    /// <summary>
    /// Batches as the gateway would upload them every 10 s: terminal sessions (even seeds) and SQL
    /// sessions (odd seeds), about <paramref name="batchBytes"/> each, offsets as in its recording file.
    /// </summary>
    public static SessionPlan Plan(string gatewayId, int seed, int batches, int batchBytes = 4096)
    {
        var start = new DateTimeOffset(2026, 12, 4, 9, 0, 0, TimeSpan.Zero);
        Workload workload = seed % 2 == 0 ? new TerminalWorkload(seed, start) : new SqlWorkload(seed, start);
        var file = new RecordingFile();
        var planned = new List<PendingBatch>(batches);
        for (var i = 0; i < batches; i++)
        {
            workload.Record(file, batchBytes, TimeSpan.FromSeconds(10));
            var batch = file.NextBatch()!;
            file.Acknowledge(batch);
            planned.Add(batch);
        }

        return new SessionPlan(Guid.CreateVersion7(), gatewayId, workload.ResourceType, planned);
    }
}
