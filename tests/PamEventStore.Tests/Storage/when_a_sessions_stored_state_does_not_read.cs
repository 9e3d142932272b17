using System.Net;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Storage;

/// <summary>
/// A session's snapshot changed in the database so that it no longer reads as a session (or written by a
/// newer version): every request about that session is answered with a problem of that session, nothing
/// is stored or changed, and its events can still be checked.
/// </summary>
[Collection(PamStoreCollection.Name)]
public sealed class when_a_sessions_stored_state_does_not_read(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private async Task<Guid> RecordedWithUnreadableState(string alteration)
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 100)).ShouldBeAccepted(0);
        await StoredEvents.ExecuteAsync(store, $"update pam.mt_doc_pamsession set {alteration} where tenant_id = @org and id = @session", ("org", _org.Id), ("session", session));
        return session;
    }

    private Task<long> EventCount(Guid session) =>
        StoredEvents.ScalarAsync<long>(store, "select count(*) from pam.mt_events where tenant_id = @org and stream_id = @session", ("org", _org.Id), ("session", session));

    [Theory]
    [InlineData("data = jsonb_set(data, '{status}', '\"paused\"')")] // a status this version does not know
    [InlineData("data = jsonb_set(data, '{version}', '\"x\"')")]
    [InlineData("data = jsonb_set(data, '{createdAt}', '\"yesterday\"')")]
    [InlineData("data = '{}'::jsonb")] // reads as all defaults: an empty session that never started
    [InlineData("data = '{\"bogus\":1}'::jsonb")]
    [InlineData("data = jsonb_set(data, '{projectId}', 'null')")]
    [InlineData("data = jsonb_set(data, '{batchCount}', '-5')")] // a count no session can have
    public async Task every_request_about_it_is_a_problem_of_that_session_and_nothing_is_stored(string alteration)
    {
        var session = await RecordedWithUnreadableState(alteration);
        var events = await EventCount(session);
        var sessionUrl = $"{Org.Sessions}/{session}";

        var answers = new Dictionary<string, Reply>
        {
            ["read"] = await _org.SendAsync(HttpMethod.Get, sessionUrl, _org.UserToken()),
            ["log page"] = await _org.LogsAsync(session),
            ["live tail"] = await _org.SendAsync(HttpMethod.Get, $"{sessionUrl}/live", _org.UserToken()),
            ["upload state"] = await _org.SendAsync(HttpMethod.Get, $"{sessionUrl}/upload-state", _org.GatewayToken()),
            ["upload"] = await _org.UploadAsync(session, 100, Lines(2, 2), endOffset: 200),
            ["legacy upload"] = await _org.UploadLegacyAsync(session, Lines(0, 4)),
            ["end"] = await _org.EndAsync(session),
        };

        foreach (var (request, answer) in answers)
        {
            answer.ShouldBeProblem(HttpStatusCode.Conflict, "session-unreadable");
            answer.Body.GetProperty("detail").GetString()!.ShouldContain(session.ToString(), customMessage: request);
        }

        (await EventCount(session)).ShouldBe(events);

        // Its events are still there to be checked, and the check names the snapshot.
        var integrity = await _org.SendAsync(HttpMethod.Get, $"{sessionUrl}/integrity", _org.UserToken());
        integrity.Status.ShouldBe(HttpStatusCode.OK, integrity.Body.ToString());
        var report = integrity.Body.GetProperty("integrity");
        report.GetProperty("intact").GetBoolean().ShouldBeFalse();
        report.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("kind").GetString()).ShouldContain("snapshot");
    }

    [Fact]
    public async Task it_is_logged_as_an_error_naming_the_request()
    {
        var session = await RecordedWithUnreadableState("data = jsonb_set(data, '{status}', '\"paused\"')");

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", _org.UserToken())).ShouldBeProblem(HttpStatusCode.Conflict, "session-unreadable");

        store.Logs.Entries.ShouldContain(e => e.Level == Microsoft.Extensions.Logging.LogLevel.Error && e.Message.Contains($"/{session}") && e.Message.Contains("session-unreadable"));
    }

    [Fact]
    public async Task other_sessions_are_served_as_before()
    {
        var unreadable = await RecordedWithUnreadableState("data = jsonb_set(data, '{status}', '\"paused\"')");
        var other = await _org.CreateSessionAsync();

        // Sent together, so that both may be committed in one group: the unreadable one is refused on its own.
        var uploads = await Task.WhenAll(_org.UploadAsync(unreadable, 100, Lines(2, 2)), _org.UploadAsync(other, 0, Lines(0, 2)));

        uploads[0].ShouldBeProblem(HttpStatusCode.Conflict, "session-unreadable");
        uploads[1].ShouldBeAccepted(0);
        (await _org.SessionAsync(other)).GetProperty("batchCount").GetInt64().ShouldBe(1);
    }
}
