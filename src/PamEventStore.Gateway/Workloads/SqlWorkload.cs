using System.Text;
using PamEventStore.Gateway.Recording;

namespace PamEventStore.Gateway.Workloads;

/// <summary>A database session: one command log per statement, with the rows it returned.</summary>
public sealed class SqlWorkload(int seed, DateTimeOffset start) : Workload(seed, start)
{
    public override string ResourceType => "postgres";

    protected override IEnumerable<UnstampedEvent> NextActivity()
    {
        var id = Random.Next(1, 1_000_000);
        var (query, rows) = Random.Next(4) switch
        {
            0 => ($"SELECT id, email, created_at FROM users WHERE id > {id} ORDER BY id LIMIT 10;", 10),
            1 => ($"UPDATE orders SET status = 'shipped' WHERE id = {id};", 0),
            2 => ($"SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '1 day' LIMIT 25;", 25),
            _ => ($"DELETE FROM sessions WHERE expires_at < now() AND user_id = {id};", 0),
        };

        var output = new StringBuilder();
        if (rows == 0)
        {
            output.Append(query.StartsWith("UPDATE") ? "UPDATE 1" : $"DELETE {Random.Next(0, 5)}");
        }
        else
        {
            output.Append(" id | value | created_at\n----+-------+---------------------\n");
            for (var i = 0; i < rows; i++) output.Append($" {id + i} | user{id + i}@example.com | 2026-12-0{Random.Next(1, 4)} {Random.Next(24):00}:{Random.Next(60):00}:00\n");
            output.Append($"({rows} rows)");
        }

        var result = output.ToString();
        yield return new UnstampedEvent(query.Length + result.Length + 80, (timestamp, _) => GoJson.CommandLog(timestamp, query, result));
    }
}
