using Shouldly;

namespace PamEventStore.LocalPostgres.Tests;

public class PostgresBinariesTests
{
    [Fact]
    public void find_returns_a_directory_holding_initdb_and_pg_ctl()
    {
        var bin = PostgresBinaries.Find();

        bin.ShouldNotBeNull();
        File.Exists(Path.Combine(bin, "initdb")).ShouldBeTrue();
        File.Exists(Path.Combine(bin, "pg_ctl")).ShouldBeTrue();
    }

    [Fact]
    public void find_honours_a_configured_directory_that_holds_the_binaries()
    {
        var discovered = PostgresBinaries.Find()!;

        PostgresBinaries.Find(discovered).ShouldBe(discovered);
    }

    [Fact]
    public void find_falls_back_to_discovery_when_the_configured_directory_is_bogus()
    {
        PostgresBinaries.Find("/nonexistent/postgresql/bin").ShouldBe(PostgresBinaries.Find());
    }

    [Fact]
    public void find_skips_a_configured_directory_holding_postgres_older_than_15()
    {
        var fake = Directory.CreateTempSubdirectory("pamstore-lp-test-oldpg-").FullName;
        try
        {
            foreach (var tool in new[] { "initdb", "pg_ctl" })
            {
                var script = Path.Combine(fake, tool);
                File.WriteAllText(script, $"#!/bin/sh\necho '{tool} (PostgreSQL) 13.4'\n");
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            PostgresBinaries.Find(fake).ShouldNotBe(fake);
            PostgresBinaries.Find(fake).ShouldBe(PostgresBinaries.Find());
        }
        finally
        {
            Directory.Delete(fake, recursive: true);
        }
    }

    [Fact]
    public void the_not_found_message_names_all_three_ways_out()
    {
        var message = new PostgresNotFoundException("/opt/pg13/bin holds pg_ctl (PostgreSQL) 13.4").Message;

        message.ShouldContain("PostgreSQL >= 15");
        message.ShouldContain("13.4");
        message.ShouldContain("apt-get install postgresql");
        message.ShouldContain("ConnectionStrings:Marten");
        message.ShouldContain("ConnectionStrings__Marten");
        message.ShouldContain("docker compose up -d");
        message.ShouldContain("docker-compose.yml");
    }
}
