using Marten;

namespace PamEventStore.Http;

public static class Health
{
    /// <summary>Anyone may ask; the database is asked at most this often.</summary>
    private static readonly TimeSpan Remembered = TimeSpan.FromSeconds(2);

    private sealed record Answer(DateTimeOffset At, bool Healthy);

    // One reference, swapped whole: concurrent requests never read half of an update.
    private static Answer _last = new(DateTimeOffset.MinValue, false);

    /// <summary>The question in flight, shared by every request that comes while it is asked: one at a time, however often the node is polled.</summary>
    private static Task<Answer>? _asking;
    private static readonly Lock Asking = new();

    /// <summary><c>GET /health</c> (and <c>HEAD</c>, as load balancers ask), anonymous: 200 when the service's database answers in time and takes writes, 503 when it does not.</summary>
    public static void MapHealth(this WebApplication app) =>
        app.MapMethods("/health", [HttpMethods.Get, HttpMethods.Head], async (IDocumentStore store, TimeProvider clock, CancellationToken ct) =>
        {
            var last = _last;
            if (clock.GetUtcNow() - last.At > Remembered)
            {
                try
                {
                    last = await AskOnceAsync(store, clock).WaitAsync(Patience, ct);
                }
                catch (TimeoutException)
                {
                    // Not answered in time is the answer; the question goes on, and what it finds is remembered.
                    last = new Answer(clock.GetUtcNow(), false);
                }
            }

            return last.Healthy
                ? Results.Ok(new { status = "ok" })
                : Problems.DatabaseUnavailable(ErrorResponses.DatabaseRetryAfterSeconds).ToResult();
        }).AllowAnonymous();

    /// <summary>How long a request waits for the database's answer: a load balancer asks often and gives up soon.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    /// <summary>The question in flight, or a new one; its answer is remembered when it comes, whoever still waits for it.</summary>
    private static Task<Answer> AskOnceAsync(IDocumentStore store, TimeProvider clock)
    {
        lock (Asking)
        {
            if (_asking is { IsCompleted: false } asking) return asking;
            return _asking = AskAsync(store, clock);
        }
    }

    /// <summary>
    /// The database answers and takes writes: a primary turned read-only (a failover,
    /// <c>default_transaction_read_only</c>) refuses every upload, so this node is not healthy. Never
    /// throws: any failure is the answer (Marten wraps what Npgsql throws; a wrong password or a missing
    /// database is as unhealthy as a server that is down).
    /// </summary>
    private static async Task<Answer> AskAsync(IDocumentStore store, TimeProvider clock)
    {
        bool healthy;
        try
        {
            await using var session = store.QuerySession();
            var writable = await session.QueryAsync<bool>("select not pg_is_in_recovery() and current_setting('transaction_read_only') = 'off'");
            healthy = writable.SingleOrDefault();
        }
        catch (Exception)
        {
            healthy = false;
        }

        var answer = new Answer(clock.GetUtcNow(), healthy);
        _last = answer;
        return answer;
    }
}
