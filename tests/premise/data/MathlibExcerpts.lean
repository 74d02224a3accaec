/-
Short excerpts adapted from Mathlib (https://github.com/leanprover-community/mathlib4,
commit 5352afcc), Apache-2.0, Copyright (c) the Mathlib contributors. Bodies are cut short;
the file is test data for the declaration extractor, not a Lean file meant to compile. Each
excerpt is one the extractor once got wrong, or a pattern Mathlib relies on.
-/
module

public import Mathlib.Init

@[expose] public section

-- Mathlib/Lean/Json.lean: `deriving instance` for core types gets the `_mathlib` suffix
-- (Mathlib itself refers to `Lean.instToJsonPUnit_mathlib`).
namespace Lean

deriving instance FromJson, ToJson for PUnit

end Lean

-- Mathlib/Combinatorics/SimpleGraph/Basic.lean: anonymous instance, MathlibQR gold name
-- `instFintypeSimpleGraphOfDecidableEq`.
/-- We can enumerate simple graphs by enumerating all functions `V → V → Bool`
and filtering on whether they are symmetric and irreflexive. -/
instance {V : Type u} [Fintype V] [DecidableEq V] : Fintype (SimpleGraph V) where
  elems := Finset.univ.map SimpleGraph.mk'
  complete := by
    classical
    rintro ⟨Adj, hs, hi⟩

-- Mathlib/AlgebraicTopology/Quasicategory/Basic.lean: gold `SSet.instQuasicategoryOfKanComplex`.
namespace SSet

/-- Every Kan complex is a quasicategory. -/
@[kerodon 003C]
instance (S : SSet) [KanComplex S] : Quasicategory S where
  hornFilling' _ _ σ₀ _ _ := KanComplex.hornFilling σ₀

end SSet

-- Mathlib/Analysis/InnerProductSpace/Adjoint.lean: notation `E →L[𝕜] E` is
-- `ContinuousLinearMap (RingHom.id 𝕜) E E`; gold `ContinuousLinearMap.instCStarRingId`.
namespace ContinuousLinearMap

instance : CStarRing (E →L[𝕜] E) where
  norm_mul_self_le x := le_of_eq <| Eq.symm <| norm_adjoint_comp_self x

end ContinuousLinearMap

-- Mathlib/LinearAlgebra/CliffordAlgebra/Basic.lean: instances from a `deriving` clause on a
-- def; gold `instAlgebraCliffordAlgebra`.
def CliffordAlgebra :=
  RingQuot (CliffordAlgebra.Rel Q)
deriving Inhabited, Ring, Algebra R

-- Mathlib/ModelTheory/Ultraproducts.lean: an escaped name; gold
-- `FirstOrder.Language.Ultraproduct.structure`.
namespace FirstOrder.Language.Ultraproduct

instance «structure» : L.Structure ((u : Filter α).Product M) :=
  { (productSetoid u M).prestructure with }

end FirstOrder.Language.Ultraproduct

-- Mathlib/Algebra/Group/Equiv/Basic.lean: an attribute spanning lines, with a continuation
-- at column 0 and a doc comment inside it.
/-- The equivalence `(β →* γ) ≃ (α →* γ)` obtained by precomposition with
a multiplicative equivalence `e : α ≃* β`. -/
@[to_additive (attr := simps -isSimp,
deprecated MulEquiv.monoidHomCongrLeftEquiv (since := "2025-08-12"))
/-- The equivalence `(β →+ γ) ≃ (α →+ γ)` obtained by precomposition with
an additive equivalence `e : α ≃+ β`. -/]
def precompEquiv {α β : Type*} [Monoid α] [Monoid β] (e : α ≃* β) (γ : Type*) [Monoid γ] :
    (β →* γ) ≃ (α →* γ) where
  toFun f := f.comp e.toMonoidHom

-- Mathlib/RingTheory/FractionalIdeal/Basic.lean: a declaration indented by one space under
-- its attribute.
@[simp]
 theorem equivNum_apply [IsDomain R] [Nontrivial P]
    {I : FractionalIdeal S P} (h_nz : (I.den : R) ≠ 0) (x : I) :
    algebraMap R P (equivNum h_nz x) = I.den • x := by
  simp

-- Mathlib/SetTheory/Lists.lean: indented declarations inside `mutual`.
mutual
  instance Equiv.decidable : ∀ l₁ l₂ : Lists α, Decidable (l₁ ~ l₂)
    | ⟨false, l₁⟩, ⟨false, l₂⟩ =>
      decidable_of_iff' (l₁ = l₂) <| by
        cases l₁
  instance Subset.decidable : ∀ l₁ l₂ : Lists' α true, Decidable (l₁ ⊆ l₂)
    | Lists'.nil, _ => isTrue Lists'.Subset.nil
end

-- Mathlib/Topology/MetricSpace/BundledFun.lean: `name binders : type` fields, and
-- Mathlib/Order/Defs/LinearOrder.lean: `compare a b := ...` overrides a default (no field).
structure PseudoMetric [Zero R] [Add R] [LE R] where
  /-- The underlying binary function mapping into a linearly ordered additive monoid. -/
  toFun : X → X → R
  /-- A pseudometric must take identical elements to 0. -/
  refl' x : toFun x x = 0
  symm' x y : toFun x y = toFun y x
  compare a b := compareOfLessAndEq a b

-- Mathlib/Order/Lattice.lean: a class that only extends (no `where`); parent projections.
/-- A lattice is a join-semilattice which is also a meet-semilattice. -/
class Lattice (α : Type u) extends SemilatticeSup α, SemilatticeInf α

-- Mathlib/LinearAlgebra/Basis/Defs.lean: `variable ... in` before a docstring.
namespace Module

variable (ι R M) in
/-- A `Basis ι R M` for a module `M` is the type of `ι`-indexed `R`-bases of `M`. -/
structure Basis where
  /-- `Basis.ofRepr` constructs a basis given an assignment of coordinates to each vector. -/
  ofRepr ::
    /-- `repr` is the linear equivalence sending a vector `x` to its coordinates. -/
    repr : M ≃ₗ[R] ι →₀ R

end Module

-- Mathlib/Data/Nat/Squarefree.lean: a commented-out region with a nested module doc.
/-

/-! ### Square-free prover -/

theorem squarefree_bit10 (n : ℕ) (h : SquarefreeHelper n 1) : Squarefree (bit0 (bit1 n)) := by
  sorry
-/

-- Mathlib/NumberTheory/NumberField/Basic.lean: notation `𝓞 K`; gold
-- `NumberField.RingOfIntegers.instIsDedekindDomain`.
namespace NumberField.RingOfIntegers

instance : IsDedekindDomain (𝓞 K) :=
  IsIntegralClosure.isDedekindDomain ℤ ℚ K _

end NumberField.RingOfIntegers
