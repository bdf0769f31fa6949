// Simulation model of the Lattice ECP5 carry cell CCU2C (two bits of a carry chain), for
// Icarus and Verilator runs of designs generated with `--carry ecp5`.
//
// Written from the cell's documented behaviour (Lattice FPGA Libraries Reference Guide): each
// half has a LUT4 over A, B, C, D (INIT) and a LUT2 over A, B (the LUT4's INIT[3:0]);
//   S    = LUT4 ^ carry_in
//   cout = LUT4 ? carry_in : LUT2
// with INJECT1_x = "YES" forcing the half's carry-in and generate to 0. amos_hw's test
// tests/test_carry.py checks this model against Yosys's own (ecp5/ccu2c_sim.vh) exhaustively
// when the fpga extra is installed.
module CCU2C (
    input  CIN,
    input  A0, B0, C0, D0,
    input  A1, B1, C1, D1,
    output S0, S1,
    output COUT
);
    parameter [15:0] INIT0 = 16'h0000;
    parameter [15:0] INIT1 = 16'h0000;
    parameter INJECT1_0 = "YES";
    parameter INJECT1_1 = "YES";

    wire p0 = INIT0[{D0, C0, B0, A0}];
    wire g0 = (INJECT1_0 == "YES") ? 1'b0 : INIT0[{B0, A0}];
    wire c0 = (INJECT1_0 == "YES") ? 1'b0 : CIN;
    assign S0 = p0 ^ c0;
    wire cout0 = p0 ? CIN : g0;

    wire p1 = INIT1[{D1, C1, B1, A1}];
    wire g1 = (INJECT1_1 == "YES") ? 1'b0 : INIT1[{B1, A1}];
    wire c1 = (INJECT1_1 == "YES") ? 1'b0 : cout0;
    assign S1 = p1 ^ c1;
    assign COUT = p1 ? cout0 : g1;
endmodule
