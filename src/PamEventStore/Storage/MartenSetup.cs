using JasperFx;
using JasperFx.Events;
using JasperFx.Events.Projections;
using JasperFx.MultiTenancy;
using Marten;
using Npgsql;
using PamEventStore.Crypto;
using PamEventStore.Sessions;
using Weasel.Core;

namespace PamEventStore.Storage;

public static class MartenSetup
{
    /// <summary>The stored type name of <see cref="BatchUploaded"/>, which <see cref="StoredPage"/> reads by.</summary>
    public static readonly string BatchUploadedType = SessionEventNames.All[typeof(BatchUploaded)];

    /// <summary>The event store: one stream per session, every event and document under its org's tenant.</summary>
    public static void ConfigurePamStore(this StoreOptions opts, string connectionString)
    {
        opts.Connection(Tuned(connectionString));
        opts.DatabaseSchemaName = "pam";
        opts.UseSystemTextJsonForSerialization(EnumStorage.AsString, Casing.CamelCase, json => json.Converters.Add(new SessionSnapshotConverter()));

        // Tenant = org_id from the caller's token: every query and append is scoped to it by Marten.
        opts.Events.TenancyStyle = TenancyStyle.Conjoined;
        opts.Policies.AllDocumentsAreMultiTenanted();

        opts.Events.StreamIdentity = StreamIdentity.AsGuid;

        // Appends hold the stream's row lock (FetchForExclusiveWriting), so the versions are known
        // client-side and the cheaper quick append loses nothing the projections need.
        opts.Events.AppendMode = EventAppendMode.Quick;

        foreach (var (type, name) in SessionEventNames.All) opts.Events.MapEventType(type, name);

        var ciphertextColumn = new EncryptedRecordingSerializer();
        opts.Events.UseBinarySerializer<BatchUploaded>(ciphertextColumn);
        opts.Events.UseBinarySerializer<LegacyLogsUploaded>(ciphertextColumn);

        opts.Projections.Snapshot<PamSession>(SnapshotLifecycle.Inline);
        opts.Projections.Add<RecordedBatchProjection>(ProjectionLifecycle.Inline);

        // Only re-uploads of old offsets search by offset; pages go by id (session + sequence).
        opts.Schema.For<RecordedBatch>().Index([x => x.SessionId, x => x.StartOffset]);
        opts.Schema.For<OrgKeyRing>().UseOptimisticConcurrency(true);
    }

    /// <summary>
    /// Connection defaults measured to matter (BENCHMARKS.md), unless the connection string sets them:
    /// no DISCARD ALL when a pooled connection is reused (it also throws away every prepared
    /// statement and plan); automatic preparation of the statements every upload and page repeats;
    /// a pool of four connections per core (at least 16); and 5 s for a connection to open instead of 15. PostgreSQL gains nothing from more
    /// statements at once than it has cores to run them, and Npgsql hands idle connections out in
    /// turn, preparing a statement on a connection at its second use there: in a pool grown to 100
    /// by a burst, a log page's query went unprepared for its next hundred-odd reads.
    /// </summary>
    public static string Tuned(string connectionString)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            // The message names the position or the key, never the password.
            throw new StartRefusedException($"ConnectionStrings:Marten is not a PostgreSQL connection string: {e.Message}");
        }

        // The keys the operator wrote, as keys: a value (a password) that spells one is not it, and
        // "Command Timeout" is not "Timeout".
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        bool Given(string key) => given.ContainsKey(key) || given.ContainsKey(key.Replace(" ", ""));

        if (!Given("No Reset On Close")) builder.NoResetOnClose = true;
        if (!Given("Max Auto Prepare")) builder.MaxAutoPrepare = 64;
        if (!Given("Auto Prepare Min Usages")) builder.AutoPrepareMinUsages = 2;
        if (!Given("Maximum Pool Size") && !Given("Max Pool Size")) builder.MaxPoolSize = DefaultPoolSize;

        // Npgsql waits 15 s for a connection to open. A frozen server or a lost route accepts the TCP
        // connection and never answers, and a request waited that long before its command timeout began.
        // The same limit bounds a wait for a free pooled connection: past it, 503 database-unavailable
        // (the node's own limits on pages, tails and uploads keep below the pool).
        if (!Given("Timeout")) builder.Timeout = ConnectTimeoutSeconds;
        return builder.ConnectionString;
    }

    /// <summary>Seconds a connection has to open, unless the connection string says: ample for a database on the same network.</summary>
    public const int ConnectTimeoutSeconds = 5;

    public static int DefaultPoolSize => Math.Max(16, 4 * Environment.ProcessorCount);

}
