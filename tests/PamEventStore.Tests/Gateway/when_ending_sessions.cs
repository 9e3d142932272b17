using System.Net;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Gateway;

[Collection(PamStoreCollection.Name)]
public sealed class when_ending_sessions(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    [Fact]
    public async Task the_gateway_ends_its_session()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));

        var reply = await _org.EndAsync(session);

        reply.Status.ShouldBe(HttpStatusCode.OK);
        var view = reply.Body.GetProperty("session");
        view.GetProperty("status").GetString().ShouldBe("ended");
        view.GetProperty("endedAt").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.String);
    }

    [Fact]
    public async Task ending_the_empty_session_id_is_not_found_by_the_gateway_or_the_platform()
    {
        (await _org.EndAsync(Guid.Empty)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.EndAsync(Guid.Empty, _org.UserToken(PamScopes.Create))).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public async Task ending_twice_changes_nothing()
    {
        var session = await _org.CreateSessionAsync();
        var first = (await _org.EndAsync(session)).Body.GetProperty("session").GetProperty("endedAt").GetString();

        var again = await _org.EndAsync(session);

        again.Status.ShouldBe(HttpStatusCode.OK);
        again.Body.GetProperty("session").GetProperty("endedAt").GetString().ShouldBe(first);
    }

    [Fact]
    public async Task the_platform_may_end_a_session_with_the_create_scope()
    {
        var session = await _org.CreateSessionAsync();

        var reply = await _org.EndAsync(session, _org.UserToken(PamScopes.Create));

        reply.Status.ShouldBe(HttpStatusCode.OK);
        reply.Body.GetProperty("session").GetProperty("status").GetString().ShouldBe("ended");
    }

    [Fact]
    public async Task a_reason_is_kept()
    {
        var session = await _org.CreateSessionAsync();

        await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/end?reason=idle_timeout", _org.GatewayToken());

        (await _org.SessionAsync(session)).GetProperty("endReason").GetString().ShouldBe("idle_timeout");
    }

    [Theory]
    [InlineData("idle%00timeout")]
    [InlineData("idle%0Atimeout")]
    [InlineData("idle%1B%5B2Jtimeout")]
    [InlineData("%C2%85")]
    [InlineData("idle&reason=timeout")]
    public async Task a_reason_holding_a_control_character_or_given_twice_is_refused_and_the_session_stays_open(string reason)
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 1));

        var reply = await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/end?reason={reason}", _org.GatewayToken());

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
        (await _org.SessionAsync(session)).GetProperty("status").GetString().ShouldBe("active");
        (await _org.EndAsync(session)).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task a_reason_in_any_script_is_kept()
    {
        var session = await _org.CreateSessionAsync();

        var reply = await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{session}/end?reason={Uri.EscapeDataString("délai d'inactivité 超时")}", _org.GatewayToken());

        reply.Status.ShouldBe(HttpStatusCode.OK);
        (await _org.SessionAsync(session)).GetProperty("endReason").GetString().ShouldBe("délai d'inactivité 超时");
    }

    [Fact]
    public async Task a_restarted_gateway_reads_where_its_upload_stands()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 200);
        await _org.UploadAsync(session, 200, Lines(2, 3), endOffset: 512);

        var state = (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", _org.GatewayToken())).Body;

        state.GetProperty("status").GetString().ShouldBe("active");
        state.GetProperty("batchCount").GetInt64().ShouldBe(2);
        state.GetProperty("eventCount").GetInt64().ShouldBe(5);
        state.GetProperty("lastStartOffset").GetInt64().ShouldBe(200);
        state.GetProperty("lastEndOffset").GetInt64().ShouldBe(512);
        state.GetProperty("acceptsUploadsUntil").ValueKind.ShouldBe(System.Text.Json.JsonValueKind.Null);
    }

    [Fact]
    public async Task an_ended_session_tells_its_gateway_until_when_it_takes_the_final_flush()
    {
        var session = await _org.CreateSessionAsync();
        var endedAt = (await _org.EndAsync(session)).Body.GetProperty("session").GetProperty("endedAt").GetDateTimeOffset();

        var state = (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", _org.GatewayToken())).Body;

        state.GetProperty("acceptsUploadsUntil").GetDateTimeOffset().ShouldBe(endedAt.AddMinutes(2));
    }
}
