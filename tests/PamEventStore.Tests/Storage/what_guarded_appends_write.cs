using System.Net;
using System.Text.Json.Nodes;
using Marten;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PamEventStore.Sessions;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Storage;

/// <summary>
/// Uploads are appended by group commit's own writer (GuardedAppends), not by Marten's unit of work. What
/// it writes must be what Marten writes for the same events, column for column, in every table, so that
/// Marten reads it, projects it and rebuilds it as its own: the same events are appended through Marten
/// to a session of the same id in another org, and the rows compared.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class what_guarded_appends_write(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();
    private readonly Org _marten = store.NewOrg();

    private IDocumentStore Documents => store.Host.Services.GetRequiredService<IDocumentStore>();

    /// <summary>What differs between two rows of the same content by nature: their identity, their tenant and when they were written.</summary>
    private static readonly Dictionary<string, string[]> Unique = new()
    {
        ["mt_events"] = ["seq_id", "id", "tenant_id", "timestamp"],
        ["mt_streams"] = ["tenant_id", "timestamp", "created"],
        ["mt_doc_pamsession"] = ["tenant_id", "mt_last_modified"],
        ["mt_doc_recordedbatch"] = ["tenant_id", "mt_last_modified", "mt_version"],
    };

    /// <summary>Every column of the session's rows (whatever columns the table has), in a stable order, but for those unique to a row.</summary>
    private async Task<List<JsonObject>> Rows(string table, Org org, Guid session)
    {
        var owned = table switch
        {
            "mt_events" => "t.stream_id = @session order by t.version",
            "mt_doc_recordedbatch" => "(t.data ->> 'sessionId')::uuid = @session order by t.id",
            _ => "t.id = @session",
        };
        await using var connection = new NpgsqlConnection(store.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"select row_to_json(t)::text from pam.{table} t where t.tenant_id = @org and {owned}", connection);
        command.Parameters.AddWithValue("org", org.Id);
        command.Parameters.AddWithValue("session", session);
        var rows = new List<JsonObject>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var row = JsonNode.Parse(reader.GetString(0))!.AsObject();
            foreach (var column in Unique[table]) row.Remove(column).ShouldBeTrue($"{table}.{column}");
            rows.Add(row);
        }

        return rows;
    }

    [Fact]
    public async Task the_rows_of_uploads_are_the_rows_marten_writes_for_the_same_events()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3), endOffset: 300)).ShouldBeAccepted(0); // activated, a batch
        (await _org.UploadAsync(session, 500, Lines(3, 2), endOffset: 700)).ShouldBeAccepted(1); // a gap, a batch
        (await _org.UploadAsync(session, 500, Lines(3, 4), endOffset: 900)).ShouldBeAccepted(2); // the batch extended at its offset
        (await _org.UploadAsync(session, 0, Lines(9, 3), endOffset: 300)).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict"); // a conflict, recorded

        // The same events through Marten's own append and inline projections, to a session of the same id in another org.
        await using (var query = Documents.QuerySession(_org.Id))
        await using (var marten = Documents.LightweightSession(_marten.Id))
        {
            var events = await query.Events.FetchStreamAsync(session);
            events.Select(e => e.Data.GetType().Name).ShouldBe([
                "SessionStarted", "SessionActivated", "BatchUploaded", "GapDetected", "BatchUploaded", "BatchUploaded", "BatchConflictRejected"]);
            marten.Events.StartStream<PamSession>(session, events.Select(e => e.Data).ToArray());
            await marten.SaveChangesAsync();
        }

        foreach (var table in Unique.Keys)
        {
            var written = await Rows(table, _org, session);
            var martens = await Rows(table, _marten, session);
            written.Count.ShouldBe(table == "mt_events" ? 7 : table == "mt_doc_recordedbatch" ? 3 : 1, table);
            for (var i = 0; i < written.Count; i++) JsonNode.DeepEquals(written[i], martens[i]).ShouldBeTrue($"{table}, row {i}:\n{written[i].ToJsonString()}\n{martens[i].ToJsonString()}");
        }

        // And Marten reads it as its own: the aggregate it builds from the stream is the snapshot stored.
        await using var reader = Documents.QuerySession(_org.Id);
        var aggregated = await reader.Events.AggregateStreamAsync<PamSession>(session);
        Documents.Options.Serializer().ToJson(aggregated).ShouldBe(Documents.Options.Serializer().ToJson(await reader.LoadAsync<PamSession>(session)));
    }
}
