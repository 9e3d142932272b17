using System.Net;
using System.Text;
using Npgsql;
using PamEventStore.Gateway;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

[Collection(PamStoreCollection.Name)]
public sealed class when_a_gateway_retries_exactly(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    /// <summary>Holds the session stream's row lock, as a slow concurrent upload would.</summary>
    private async Task<NpgsqlConnection> LockStreamAsync(Guid sessionId)
    {
        var connection = new NpgsqlConnection(store.Database.ConnectionString);
        await connection.OpenAsync();
        await using var begin = new NpgsqlCommand("begin; select version from pam.mt_streams where tenant_id = @org and id = @id for update", connection);
        begin.Parameters.AddWithValue("org", _org.Id);
        begin.Parameters.AddWithValue("id", sessionId);
        await begin.ExecuteNonQueryAsync();
        return connection;
    }

    [Fact]
    public async Task the_same_bytes_again_are_answered_without_waiting_for_the_session()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);
        await using var lockHolder = await LockStreamAsync(session);

        var retry = _org.UploadAsync(session, 0, Lines(0, 3));

        (await retry.WaitAsync(TimeSpan.FromSeconds(5))).ShouldBeDuplicate();
    }

    [Fact]
    public async Task the_same_events_in_other_bytes_are_decided_by_the_session_on_what_it_stored_without_waiting_for_its_lock()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);
        await using var lockHolder = await LockStreamAsync(session);

        // Not this node's memory of the bytes: the session decides it, on its committed snapshot. Nothing is
        // appended, so nothing waits for whoever holds the stream.
        var reformatted = _org.UploadAsync(session, 0, Lines(0, 3).Replace(",", ", "));

        (await reformatted.WaitAsync(TimeSpan.FromSeconds(5))).ShouldBeDuplicate();
    }

    [Fact]
    public async Task other_content_at_the_offset_is_still_a_conflict()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);

        (await _org.UploadAsync(session, 0, Lines(1, 3))).ShouldBeProblem(HttpStatusCode.Conflict, "batch-conflict");
    }

    [Fact]
    public async Task another_gateway_sending_the_same_bytes_is_refused()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);

        (await _org.UploadAsync(session, 0, Lines(0, 3), token: _org.GatewayToken("gw-2"))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
    }

    [Fact]
    public async Task another_org_sending_the_same_bytes_to_the_same_id_finds_no_session()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 3))).ShouldBeAccepted(0);

        (await store.NewOrg().UploadAsync(session, 0, Lines(0, 3))).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public void memory_answers_only_for_the_same_org_session_gateway_offset_and_bytes()
    {
        using var memory = new StoredBatchMemory();
        var session = Guid.NewGuid();
        var body = StoredBatchMemory.BodyHash(Encoding.UTF8.GetBytes(Lines(0, 1)));
        memory.RememberStored("org", session, "gw-1", 100, body);

        memory.IsStored("org", session, "gw-1", 100, body).ShouldBeTrue();
        memory.IsStored("other-org", session, "gw-1", 100, body).ShouldBeFalse();
        memory.IsStored("org", Guid.NewGuid(), "gw-1", 100, body).ShouldBeFalse();
        memory.IsStored("org", session, "gw-2", 100, body).ShouldBeFalse();
        memory.IsStored("org", session, "gw-1", 200, body).ShouldBeFalse();
        memory.IsStored("org", session, "gw-1", 100, StoredBatchMemory.BodyHash("[]"u8)).ShouldBeFalse();
    }

    [Fact]
    public void memory_keeps_every_body_stored_at_an_offset()
    {
        using var memory = new StoredBatchMemory();
        var session = Guid.NewGuid();
        var first = StoredBatchMemory.BodyHash(Encoding.UTF8.GetBytes(Lines(0, 2)));
        var extended = StoredBatchMemory.BodyHash(Encoding.UTF8.GetBytes(Lines(0, 4)));

        memory.RememberStored("org", session, "gw-1", 0, first);
        memory.RememberStored("org", session, "gw-1", 0, extended);
        memory.RememberStored("org", session, "gw-1", 0, extended);

        memory.IsStored("org", session, "gw-1", 0, first).ShouldBeTrue();
        memory.IsStored("org", session, "gw-1", 0, extended).ShouldBeTrue();
    }
}
