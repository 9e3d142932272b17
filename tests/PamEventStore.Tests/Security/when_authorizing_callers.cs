using System.Net;
using Marten;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using PamEventStore.Security;
using PamEventStore.Tests.Infrastructure;
using static PamEventStore.Tests.Infrastructure.Recordings;

namespace PamEventStore.Tests.Security;

[Collection(PamStoreCollection.Name)]
public sealed class when_authorizing_callers(PamStoreHost store)
{
    private readonly Org _org = store.NewOrg();

    private static object SessionBody(Guid? id = null, string projectId = "project-1", string? gatewayId = Org.Gateway) =>
        new { id, projectId, resourceType = "ssh", resourceName = "web-1", accountName = "root", userId = "alice", gatewayId };

    private string LimitedUser(params string[] projects) =>
        TestKeys.Token(new TokenClaims(_org.Id, "bob", "user", Scopes: [PamScopes.Create, PamScopes.Read], ProjectIds: projects));

    /// <summary>The session as its own org sees it, to check a refused write changed nothing.</summary>
    private async Task ShouldBeUntouched(Guid session)
    {
        var view = await _org.SessionAsync(session);
        view.GetProperty("status").GetString().ShouldBe("starting");
        view.GetProperty("batchCount").GetInt64().ShouldBe(0);
        view.GetProperty("eventCount").GetInt64().ShouldBe(0);
        view.GetProperty("hasLegacyLogs").GetBoolean().ShouldBeFalse();
        view.GetProperty("endedAt").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    private static void ShouldNameTheScope(Reply reply, string scope)
    {
        reply.ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain(scope);
    }

    // ---- scopes

    [Fact]
    public async Task creating_without_the_create_scope_is_forbidden_and_names_the_scope()
    {
        var id = Guid.NewGuid();

        ShouldNameTheScope(await _org.CreateAsync(SessionBody(id), _org.UserToken(PamScopes.Read)), PamScopes.Create);

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    [Fact]
    public async Task a_token_with_no_scope_at_all_may_not_create()
    {
        var id = Guid.NewGuid();
        var token = TestKeys.Token(new TokenClaims(_org.Id, "alice", "user"));

        ShouldNameTheScope(await _org.CreateAsync(SessionBody(id), token), PamScopes.Create);
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task reading_a_session_without_the_read_scope_is_forbidden_and_names_the_scope()
    {
        var session = await _org.CreateSessionAsync();

        ShouldNameTheScope(await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", _org.UserToken(PamScopes.Create)), PamScopes.Read);
    }

    [Fact]
    public async Task reading_logs_without_the_read_scope_is_forbidden_and_names_the_scope()
    {
        var session = await _org.CreateSessionAsync();

        ShouldNameTheScope(await _org.LogsAsync(session, token: _org.UserToken(PamScopes.Create)), PamScopes.Read);
    }

    [Fact]
    public async Task scopes_sent_as_a_json_array_are_understood()
    {
        var session = await _org.CreateSessionAsync();
        var now = DateTime.UtcNow.AddHours(-1);
        var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = TestKeys.Auth.Issuer,
            Audience = TestKeys.Auth.Audience,
            Claims = new Dictionary<string, object>
            {
                [PamClaims.Subject] = "alice",
                [PamClaims.OrgId] = _org.Id,
                [PamClaims.ActorType] = "user",
                [PamClaims.Scope] = new[] { PamScopes.Read, PamScopes.Create },
            },
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddDays(1),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(TestKeys.SigningKey)), SecurityAlgorithms.HmacSha256),
        });

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", token)).Status.ShouldBe(HttpStatusCode.OK);
    }

    // ---- who may call which endpoint

    [Fact]
    public async Task a_user_token_may_not_upload_batches()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadAsync(session, 0, Lines(0, 2), token: _org.UserToken())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_user_token_may_not_upload_legacy_logs()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadLegacyAsync(session, Lines(0, 2), token: _org.UserToken())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_user_token_may_not_read_the_upload_state()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", _org.UserToken())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task an_identity_token_may_not_upload_even_with_every_scope()
    {
        var session = await _org.CreateSessionAsync();
        var token = TestKeys.Token(new TokenClaims(_org.Id, "platform", "identity", Org.Gateway, PamScopes.All));

        (await _org.UploadAsync(session, 0, Lines(0, 2), token: token)).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_gateway_token_may_not_read_a_session()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", _org.GatewayToken())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task a_gateway_token_may_not_read_logs()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));

        (await _org.LogsAsync(session, token: _org.GatewayToken())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task a_gateway_token_may_not_create_sessions()
    {
        var id = Guid.NewGuid();

        ShouldNameTheScope(await _org.CreateAsync(SessionBody(id), _org.GatewayToken()), PamScopes.Create);
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task a_gateway_token_reads_nothing_whatever_scopes_it_carries()
    {
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 2))).ShouldBeAccepted(0);

        foreach (var gateway in new[] { Org.Gateway, "gw-2" })
        {
            var token = TestKeys.Token(TokenClaims.ForGateway(_org.Id, gateway) with { Scopes = PamScopes.All });

            ShouldNameTheScope(await _org.LogsAsync(session, token: token), PamScopes.Read);
            ShouldNameTheScope(await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", token), PamScopes.Read);
            ShouldNameTheScope(await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/integrity", token), PamScopes.Read);
        }
    }

    [Fact]
    public async Task a_gateway_token_carrying_the_create_scope_may_not_create_sessions()
    {
        var id = Guid.NewGuid();
        var token = TestKeys.Token(TokenClaims.ForGateway(_org.Id, Org.Gateway) with { Scopes = [PamScopes.Create] });

        ShouldNameTheScope(await _org.CreateAsync(SessionBody(id), token), PamScopes.Create);
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task an_identity_token_with_the_create_scope_may_create()
    {
        var token = TestKeys.Token(new TokenClaims(_org.Id, "platform-identity", "identity", Scopes: [PamScopes.Create]));

        var reply = await _org.CreateAsync(SessionBody(), token);

        reply.Status.ShouldBe(HttpStatusCode.Created, reply.Body.ToString());
        await _org.SessionAsync(reply.Body.GetProperty("session").GetProperty("id").GetGuid());
    }

    // ---- ending

    [Fact]
    public async Task a_user_with_the_create_scope_may_end_a_session()
    {
        var session = await _org.CreateSessionAsync();

        var reply = await _org.EndAsync(session, _org.UserToken(PamScopes.Create));

        reply.Status.ShouldBe(HttpStatusCode.OK, reply.Body.ToString());
        reply.Body.GetProperty("session").GetProperty("status").GetString().ShouldBe("ended");
        (await _org.SessionAsync(session)).GetProperty("status").GetString().ShouldBe("ended");
    }

    [Fact]
    public async Task a_user_with_only_the_read_scope_may_not_end_a_session()
    {
        var session = await _org.CreateSessionAsync();

        ShouldNameTheScope(await _org.EndAsync(session, _org.UserToken(PamScopes.Read)), PamScopes.Create);

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task the_sessions_own_gateway_may_end_it()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.EndAsync(session)).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.SessionAsync(session)).GetProperty("status").GetString().ShouldBe("ended");
    }

    // ---- another organisation

    /// <summary>A session of another org answers exactly like a session that does not exist.</summary>
    private static void ShouldLookLikeNoSession(Reply reply, Reply unknown)
    {
        reply.ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        unknown.ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        reply.Body.GetProperty("title").GetString().ShouldBe(unknown.Body.GetProperty("title").GetString());
        reply.Body.EnumerateObject().Select(p => p.Name).Order().ShouldBe(unknown.Body.EnumerateObject().Select(p => p.Name).Order());
    }

    [Fact]
    public async Task another_orgs_session_cannot_be_read()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();

        ShouldLookLikeNoSession(
            await other.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", other.UserToken()),
            await other.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{Guid.NewGuid()}", other.UserToken()));
    }

    [Fact]
    public async Task another_orgs_session_logs_cannot_be_read()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));
        var other = store.NewOrg();

        ShouldLookLikeNoSession(await other.LogsAsync(session), await other.LogsAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task another_orgs_session_logs_cannot_be_read_after_its_own_org_has_read_them()
    {
        // The first page makes this node remember the session's project: that must not open it to another org.
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2));
        (await _org.LogsAsync(session)).Status.ShouldBe(HttpStatusCode.OK);
        var other = store.NewOrg();

        ShouldLookLikeNoSession(await other.LogsAsync(session), await other.LogsAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task another_orgs_gateway_cannot_upload_to_a_session_even_with_the_same_gateway_id()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();

        ShouldLookLikeNoSession(await other.UploadAsync(session, 0, Lines(0, 2)), await other.UploadAsync(Guid.NewGuid(), 0, Lines(0, 2)));

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task another_orgs_gateway_cannot_upload_legacy_logs_to_a_session()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();

        ShouldLookLikeNoSession(await other.UploadLegacyAsync(session, Lines(0, 2)), await other.UploadLegacyAsync(Guid.NewGuid(), Lines(0, 2)));

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task another_orgs_gateway_cannot_end_a_session()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();

        ShouldLookLikeNoSession(await other.EndAsync(session), await other.EndAsync(Guid.NewGuid()));

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task another_orgs_platform_cannot_end_a_session()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();

        ShouldLookLikeNoSession(await other.EndAsync(session, other.UserToken()), await other.EndAsync(Guid.NewGuid(), other.UserToken()));

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task another_orgs_gateway_cannot_read_the_upload_state()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();

        ShouldLookLikeNoSession(
            await other.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", other.GatewayToken()),
            await other.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{Guid.NewGuid()}/upload-state", other.GatewayToken()));
    }

    [Fact]
    public async Task an_upload_refused_for_another_org_leaves_nothing_in_that_org()
    {
        var session = await _org.CreateSessionAsync();
        var other = store.NewOrg();
        await other.UploadAsync(session, 0, Lines(0, 2));

        await using var query = store.Host.DocumentStore().QuerySession(other.Id);
        (await query.Events.FetchStreamAsync(session)).ShouldBeEmpty();
    }

    // ---- another gateway of the same org

    [Fact]
    public async Task another_gateway_may_not_upload_batches()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadAsync(session, 0, Lines(0, 2), token: _org.GatewayToken("gw-2"))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task another_gateway_may_not_upload_legacy_logs()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadLegacyAsync(session, Lines(0, 2), _org.GatewayToken("gw-2"))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task another_gateway_may_not_read_the_upload_state()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", _org.GatewayToken("gw-2")))
            .ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
    }

    [Fact]
    public async Task another_gateway_may_not_end_the_session()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.EndAsync(session, _org.GatewayToken("gw-2"))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_gateway_id_differing_only_in_case_is_another_gateway()
    {
        var session = await _org.CreateSessionAsync();

        (await _org.UploadAsync(session, 0, Lines(0, 2), token: _org.GatewayToken("GW-1"))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task the_sessions_gateway_may_read_its_upload_state()
    {
        var session = await _org.CreateSessionAsync();
        await _org.UploadAsync(session, 0, Lines(0, 2), endOffset: 200);

        var reply = await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", _org.GatewayToken());

        reply.Status.ShouldBe(HttpStatusCode.OK, reply.Body.ToString());
        reply.Body.GetProperty("batchCount").GetInt64().ShouldBe(1);
        reply.Body.GetProperty("lastEndOffset").GetInt64().ShouldBe(200);
    }

    // ---- a session without a gateway

    [Fact]
    public async Task a_session_created_without_a_gateway_accepts_uploads_from_no_gateway()
    {
        var session = await _org.CreateSessionAsync(gatewayId: null);

        foreach (var gateway in new[] { Org.Gateway, "gw-2", Guid.NewGuid().ToString() })
        {
            (await _org.UploadAsync(session, 0, Lines(0, 2), token: _org.GatewayToken(gateway))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
            (await _org.UploadLegacyAsync(session, Lines(0, 2), _org.GatewayToken(gateway))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
            (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", _org.GatewayToken(gateway)))
                .ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
            (await _org.EndAsync(session, _org.GatewayToken(gateway))).ShouldBeProblem(HttpStatusCode.Forbidden, "gateway-mismatch");
        }

        await ShouldBeUntouched(session);
        (await _org.LogsAsync(session)).Body.GetProperty("logs").GetArrayLength().ShouldBe(0);
    }

    [Fact]
    public async Task a_session_created_without_a_gateway_can_still_be_ended_by_the_platform()
    {
        var session = await _org.CreateSessionAsync(gatewayId: null);

        (await _org.EndAsync(session, _org.UserToken(PamScopes.Create))).Status.ShouldBe(HttpStatusCode.OK);
    }

    // ---- project limits

    [Fact]
    public async Task a_token_limited_to_projects_may_not_create_in_another_project()
    {
        var id = Guid.NewGuid();

        var reply = await _org.CreateAsync(SessionBody(id, projectId: "project-2"), LimitedUser("project-1"));

        reply.ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain("project-2");
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task a_token_limited_to_projects_may_create_in_its_own_project()
    {
        var reply = await _org.CreateAsync(SessionBody(projectId: "project-1"), LimitedUser("project-1", "project-3"));

        reply.Status.ShouldBe(HttpStatusCode.Created, reply.Body.ToString());
    }

    [Fact]
    public async Task a_token_limited_to_projects_sees_its_own_project()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-1");

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", LimitedUser("project-3", "project-1"))).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.LogsAsync(session, token: LimitedUser("project-1"))).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task a_token_limited_to_projects_does_not_see_a_session_of_another_project()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-2");
        var unknown = Guid.NewGuid();
        var limited = LimitedUser("project-1");

        ShouldLookLikeNoSession(
            await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", limited),
            await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{unknown}", limited));
        ShouldLookLikeNoSession(await _org.LogsAsync(session, token: limited), await _org.LogsAsync(unknown, token: limited));
    }

    [Fact]
    public async Task a_token_limited_to_projects_is_refused_pages_another_reader_has_just_read()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-2");
        await _org.UploadAsync(session, 0, Lines(0, 2));
        (await _org.LogsAsync(session)).Status.ShouldBe(HttpStatusCode.OK);

        ShouldLookLikeNoSession(await _org.LogsAsync(session, token: LimitedUser("project-1")), await _org.LogsAsync(Guid.NewGuid(), token: LimitedUser("project-1")));
        var allowed = await _org.LogsAsync(session, token: LimitedUser("project-2"));
        allowed.Status.ShouldBe(HttpStatusCode.OK);
        allowed.Body.GetProperty("logs").GetArrayLength().ShouldBe(2);
    }

    [Fact]
    public async Task a_token_limited_to_projects_may_not_end_a_session_of_another_project()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-2");

        (await _org.EndAsync(session, LimitedUser("project-1"))).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_gateway_token_limited_to_other_projects_finds_no_session_to_record()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-1");
        var limited = TestKeys.Token(TokenClaims.ForGateway(_org.Id, Org.Gateway) with { ProjectIds = ["project-9"] });

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", limited)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.UploadAsync(session, 0, Lines(0, 2), token: limited)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.UploadLegacyAsync(session, Lines(0, 2), limited)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.EndAsync(session, limited)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");

        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_gateway_token_limited_to_the_sessions_project_records_it()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-1");
        var limited = TestKeys.Token(TokenClaims.ForGateway(_org.Id, Org.Gateway) with { ProjectIds = ["project-9", "project-1"] });

        (await _org.UploadAsync(session, 0, Lines(0, 2), token: limited)).ShouldBeAccepted(0);
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}/upload-state", limited)).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.EndAsync(session, limited)).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task a_token_limited_to_no_project_sees_nothing()
    {
        var session = await _org.CreateSessionAsync(projectId: "project-1");

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", LimitedUser())).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.CreateAsync(SessionBody(), LimitedUser())).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    private string ProjectsAsJsonArray(params string[] projects) => ListsAsJsonArrays(projects, $"{PamScopes.Create} {PamScopes.Read}");

    /// <summary>A token whose project_ids (when given) is a JSON array, and whose scope is <paramref name="scope"/> as given: a string or an array.</summary>
    private string ListsAsJsonArrays(string[]? projects, object scope)
    {
        var now = DateTime.UtcNow.AddHours(-1);
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = TestKeys.Auth.Issuer,
            Audience = TestKeys.Auth.Audience,
            Claims = new Dictionary<string, object>
            {
                [PamClaims.Subject] = "bob",
                [PamClaims.OrgId] = _org.Id,
                [PamClaims.ActorType] = "user",
                [PamClaims.Scope] = scope,
            }.Concat(projects is null ? [] : [new KeyValuePair<string, object>(PamClaims.ProjectIds, projects)]).ToDictionary(),
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddDays(1),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(TestKeys.SigningKey)), SecurityAlgorithms.HmacSha256),
        });
    }

    [Fact]
    public async Task an_entry_of_a_json_array_of_projects_is_one_project_whatever_it_holds()
    {
        var inPay = await _org.CreateSessionAsync(projectId: "pay");
        var inMents = await _org.CreateSessionAsync(projectId: "ments");

        // ["pay ments"] names no project of the two, where the string "pay ments" names both.
        var entry = ProjectsAsJsonArray("pay ments");
        foreach (var session in new[] { inPay, inMents })
        {
            (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", entry)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
            (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", LimitedUser("pay ments"))).Status.ShouldBe(HttpStatusCode.OK);
        }

        (await _org.CreateAsync(SessionBody(projectId: "ments"), entry)).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{inPay}", ProjectsAsJsonArray("ments", "pay"))).Status.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task an_entry_of_a_json_array_of_scopes_is_one_scope_whatever_it_holds()
    {
        var session = await _org.CreateSessionAsync();

        var entry = ListsAsJsonArrays(null, new[] { $"{PamScopes.Read} {PamScopes.Create}" });
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", entry)).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
        (await _org.CreateAsync(SessionBody(), entry)).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");

        var entries = ListsAsJsonArrays(null, new[] { PamScopes.Read, PamScopes.Create });
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", entries)).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.CreateAsync(SessionBody(), entries)).Status.ShouldBe(HttpStatusCode.Created);
    }

    [Theory]
    [InlineData("pay ments")]
    [InlineData(" payments")]
    [InlineData("payments ")]
    [InlineData("pay\u00a0ments")]
    public async Task a_project_id_holding_whitespace_is_refused_as_no_list_of_projects_could_name_it(string projectId)
    {
        var reply = await _org.CreateAsync(SessionBody(projectId: System.Text.RegularExpressions.Regex.Unescape(projectId)));

        reply.ShouldBeProblem(HttpStatusCode.BadRequest, "invalid-request");
        reply.Body.GetProperty("detail").GetString()!.ShouldContain("projectId");
    }

    [Fact]
    public async Task a_token_limited_to_an_empty_json_array_of_projects_sees_nothing()
    {
        // Fail closed: an empty list of projects is no project, not every project.
        var session = await _org.CreateSessionAsync(projectId: "project-1");
        var token = ProjectsAsJsonArray();

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{session}", token)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        (await _org.CreateAsync(SessionBody(projectId: "project-9"), token)).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task projects_sent_as_a_json_array_are_all_understood()
    {
        var first = await _org.CreateSessionAsync(projectId: "project-1");
        var second = await _org.CreateSessionAsync(projectId: "project-2");
        var token = ProjectsAsJsonArray("project-1", "project-2");

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{first}", token)).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{second}", token)).Status.ShouldBe(HttpStatusCode.OK);
        (await _org.CreateAsync(SessionBody(projectId: "project-3"), token)).ShouldBeProblem(HttpStatusCode.Forbidden, "forbidden");
    }

    // ---- routes

    [Theory]
    [InlineData("GET", "/api/v1/pam/sessions/not-a-uuid", "user")]
    [InlineData("GET", "/api/v1/pam/sessions/not-a-uuid/logs", "user")]
    [InlineData("POST", "/api/v1/pam/sessions/not-a-uuid/end", "user")]
    [InlineData("POST", "/api/v1/pam/sessions/not-a-uuid/end", "gateway")]
    [InlineData("POST", "/api/v1/pam/sessions/not-a-uuid/event-batches?startOffset=0", "gateway")]
    [InlineData("POST", "/api/v1/pam/sessions/not-a-uuid/logs", "gateway")]
    [InlineData("GET", "/api/v1/pam/sessions/not-a-uuid/upload-state", "gateway")]
    [InlineData("GET", "/api/v1/pam/sessions/12345", "user")]
    public async Task a_session_id_that_is_not_a_uuid_is_no_session(string method, string url, string caller)
    {
        var token = caller == "gateway" ? _org.GatewayToken() : _org.UserToken();
        var content = method == "POST" ? new StringContent(Lines(0, 1), System.Text.Encoding.UTF8, "application/json") : null;

        var reply = await _org.SendAsync(new HttpMethod(method), url, token, content);

        reply.ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
    }

    public static TheoryData<string> OtherSpellings => new() { "{{{0}}}", "({0})", "{0:N}", "{0:U}", "%20{0}", "{0}%20", "%7B{0}%7D", "{0:B}" };

    [Theory]
    [MemberData(nameof(OtherSpellings))]
    public async Task a_session_id_spelled_other_than_as_the_service_writes_it_is_no_session(string spelling)
    {
        // One session, one path: a proxy or access rule in front of the service that goes by the path must
        // not be passed by another spelling of the same UUID.
        var session = await _org.CreateSessionAsync();
        (await _org.UploadAsync(session, 0, Lines(0, 1))).ShouldBeAccepted(0);
        var id = spelling.Replace("{0:N}", session.ToString("N")).Replace("{0:U}", session.ToString().ToUpperInvariant()).Replace("{0:B}", session.ToString("B"))
            .Replace("{{{0}}}", "{" + session + "}").Replace("{0}", session.ToString());

        foreach (var (method, path, token) in new[]
                 {
                     (HttpMethod.Get, "", _org.UserToken()), (HttpMethod.Get, "/logs", _org.UserToken()), (HttpMethod.Get, "/integrity", _org.UserToken()),
                     (HttpMethod.Get, "/upload-state", _org.GatewayToken()), (HttpMethod.Post, "/end", _org.GatewayToken()),
                 })
        {
            (await _org.SendAsync(method, $"{Org.Sessions}/{id}{path}", token)).ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        }

        (await _org.SendAsync(HttpMethod.Post, $"{Org.Sessions}/{id}/event-batches?startOffset=100", _org.GatewayToken(), new StringContent(Lines(1, 1), System.Text.Encoding.UTF8, "application/json")))
            .ShouldBeProblem(HttpStatusCode.NotFound, "session-not-found");
        var view = await _org.SessionAsync(session);
        (view.GetProperty("batchCount").GetInt32(), view.GetProperty("status").GetString()).ShouldBe((1, "active"));
    }

    [Theory]
    [InlineData("/api/v1/pam/nothing-here")]
    [InlineData("/api/v2/pam/sessions")]
    [InlineData("/api/v1/pam/sessions/00000000-0000-0000-0000-000000000001/unknown")]
    public async Task an_unknown_route_is_route_not_found(string url)
    {
        (await _org.SendAsync(HttpMethod.Get, url, _org.UserToken())).ShouldBeProblem(HttpStatusCode.NotFound, "route-not-found");
        (await _org.SendAsync(HttpMethod.Get, url, null)).ShouldBeProblem(HttpStatusCode.NotFound, "route-not-found");
    }

    [Theory]
    [InlineData("DELETE", "/api/v1/pam/sessions/{0}")]
    [InlineData("PUT", "/api/v1/pam/sessions/{0}")]
    [InlineData("GET", "/api/v1/pam/sessions/{0}/end")]
    [InlineData("GET", "/api/v1/pam/sessions/{0}/event-batches")]
    [InlineData("POST", "/api/v1/pam/sessions/{0}/upload-state")]
    [InlineData("PATCH", "/api/v1/pam/sessions")]
    public async Task a_wrong_method_is_method_not_allowed(string method, string url)
    {
        var session = await _org.CreateSessionAsync();

        var reply = await _org.SendAsync(new HttpMethod(method), string.Format(url, session), _org.UserToken());

        reply.ShouldBeProblem(HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        await ShouldBeUntouched(session);
    }

    [Fact]
    public async Task a_wrong_method_on_the_create_route_creates_nothing()
    {
        var id = Guid.NewGuid();

        (await _org.SendAsync(HttpMethod.Put, Org.Sessions, _org.UserToken(), JsonContent.Create(SessionBody(id))))
            .ShouldBeProblem(HttpStatusCode.MethodNotAllowed, "method-not-allowed");

        (await _org.SendAsync(HttpMethod.Get, $"{Org.Sessions}/{id}", _org.UserToken())).Status.ShouldBe(HttpStatusCode.NotFound);
    }
}
